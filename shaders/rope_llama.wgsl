// Rotary position embedding of the llama.cpp set, in place on x f32 [T, heads * headDim].
// Pair i (0 <= i < ropeDim / 2) of each head at position p rotates by the angle whose
// (cos, sin) is cosSin[p * ropeDim / 2 + i] (src/model/rope-table.ts builds the table as
// llama.cpp's CPU rope does). Which two values form pair i: mode 0 = NORM
// (llama.cpp LLAMA_ROPE_TYPE_NORM): x[2i], x[2i+1]; mode 1 = NEOX: x[i], x[i + ropeDim / 2].
// Dims from ropeDim on are left as they are.
//
// Bindings: 0 Params, 1 x f32 (read_write), 2 positions i32 [T], 3 cosSin vec2<f32> [positions, ropeDim / 2].
// One thread per pair: 256-thread workgroups over T * heads * ropeDim / 2 pairs, folded into 2D.
//
// x0 * c - x1 * s is computed as llama.cpp's x86 build does (its compiler contracts it to
// fmaf(x0, c, -(x1 * s))), with the fused multiply-add emulated exactly (exact.wgsl).

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

#include "exact"

@compute @workgroup_size(256)
fn rope(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let gid = (wid.y * nwg.x + wid.x) * 256u + lid;
  let half = params.ropeDim / 2u;
  let token = gid / (params.heads * half);
  if (token >= params.tokens) { return; }
  let i = gid % half;
  let base = (gid / half) * params.headDim; // (token * heads + head) * headDim
  var a = base + 2u * i;
  var b = a + 1u;
  if (params.neox != 0u) {
    a = base + i;
    b = a + half;
  }
  let cs = cosSin[u32(positions[token]) * half + i];
  let x0 = x[a];
  let x1 = x[b];
  let y = fma4(vec4<f32>(x0), vec4<f32>(cs, 0.0, 0.0), vec4<f32>(-(x1 * cs.y), x1 * cs.x, 0.0, 0.0));
  x[a] = y.x;
  x[b] = y.y;
}
