// What both RoPE kernels share (rope.wgsl, rope_llama.wgsl): the params, the bindings, and which
// two values of x a thread rotates by which angle. Pair i (0 <= i < ropeDim / 2) of each head at
// position p rotates by the angle whose (cos, sin) is cosSin[p * ropeDim / 2 + i]
// (src/model/rope-table.ts builds the table as llama.cpp's CPU rope does). Which two values form
// pair i: mode 0 = NORM (llama.cpp LLAMA_ROPE_TYPE_NORM): x[2i], x[2i+1]; mode 1 = NEOX: x[i],
// x[i + ropeDim / 2]. Dims from ropeDim on are left as they are.
//
// Bindings: 0 Params, 1 x f32 (read_write), 2 positions i32 [T], 3 cosSin vec2<f32> [positions, ropeDim / 2].
// One thread per pair: 256-thread workgroups over T * heads * ropeDim / 2 pairs, folded into 2D.

struct Params {
  tokens: u32,
  heads: u32,
  headDim: u32,
  ropeDim: u32,
  neox: u32,
  _p0: u32,
  _p1: u32,
  _p2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> positions: array<i32>;
@group(0) @binding(3) var<storage, read> cosSin: array<vec2<f32>>;

/** The pair a thread rotates: indices a, b of x, and (cos, sin); valid false past the last pair. */
struct RopePair {
  a: u32,
  b: u32,
  cs: vec2<f32>,
  valid: bool,
}

fn rope_pair(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> RopePair {
  let gid = (wid.y * nwg.x + wid.x) * 256u + lid;
  let half = params.ropeDim / 2u;
  let token = gid / (params.heads * half);
  if (token >= params.tokens) { return RopePair(0u, 0u, vec2<f32>(0.0), false); }
  let i = gid % half;
  let base = (gid / half) * params.headDim; // (token * heads + head) * headDim
  var a = base + 2u * i;
  var b = a + 1u;
  if (params.neox != 0u) {
    a = base + i;
    b = a + half;
  }
  return RopePair(a, b, cosSin[u32(positions[token]) * half + i], true);
}
