// Rotary position embedding, in place on x f32 [T, heads * headDim].
// Pair i (0 <= i < ropeDim / 2) of each head rotates by theta = pos * freqBase^(-2i / ropeDim)
// (divided by freqFactors[i] in rope_factors, llama 3.1's rope_freqs.weight). Which two values
// form pair i: mode 0 = NORM (llama.cpp LLAMA_ROPE_TYPE_NORM): x[2i], x[2i+1];
// mode 1 = NEOX: x[i], x[i + ropeDim / 2]. Dims from ropeDim on are left as they are.
//
// Bindings: 0 Params, 1 x f32 (read_write), 2 positions i32 [T], (rope_factors only) 3 freqFactors f32 [ropeDim / 2].
// One thread per pair: 256-thread workgroups over T * heads * ropeDim / 2 pairs, folded into 2D.

struct Params {
  tokens: u32,
  heads: u32,
  headDim: u32,
  ropeDim: u32,
  log2Base: f32,
  neox: u32,
  _p0: u32,
  _p1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> positions: array<i32>;
@group(0) @binding(3) var<storage, read> freqFactors: array<f32>;

// pi / 2 split for Cody-Waite reduction: j * HALF_PI_1 is exact while |j| < 2^15.
const HALF_PI_1: f32 = 1.5703125;
const HALF_PI_2: f32 = 4.837512969970703125e-4;
const HALF_PI_3: f32 = 7.54978995489188216e-8;
const TWO_OVER_PI: f32 = 0.6366197723675814;

struct Pair { valid: bool, a: u32, b: u32, index: u32, pos: f32 }

fn pair_of(gid: u32) -> Pair {
  let half = params.ropeDim / 2u;
  let token = gid / (params.heads * half);
  if (token >= params.tokens) { return Pair(false, 0u, 0u, 0u, 0.0); }
  let i = gid % half;
  let base = (gid / half) * params.headDim; // (token * heads + head) * headDim
  var a = base + 2u * i;
  var b = a + 1u;
  if (params.neox != 0u) {
    a = base + i;
    b = a + half;
  }
  return Pair(true, a, b, i, f32(positions[token]));
}

// (sin, cos) of theta to about an f32 ulp: builtin sin/cos only promise 2^-11 absolute error
// (SwiftShader's are about that far off), too coarse to match llama.cpp's sinf/cosf.
// Reduction to [-pi/4, pi/4] by quadrant, then cephes' sinf/cosf polynomials.
fn sin_cos(theta: f32) -> vec2<f32> {
  let j = round(theta * TWO_OVER_PI);
  let r = ((theta - j * HALF_PI_1) - j * HALF_PI_2) - j * HALF_PI_3;
  let z = r * r;
  let s = r + r * z * (-1.6666654611e-1 + z * (8.3321608736e-3 + z * -1.9515295891e-4));
  let c = 1.0 - 0.5 * z + z * z * (4.166664568298827e-2 + z * (-1.388731625493765e-3 + z * 2.443315711809948e-5));
  switch (i32(j) & 3) {
    case 0: { return vec2<f32>(s, c); }
    case 1: { return vec2<f32>(c, -s); }
    case 2: { return vec2<f32>(-s, -c); }
    default: { return vec2<f32>(-c, s); }
  }
}

fn rotate(p: Pair, factor: f32) {
  let invFreq = exp2(-f32(2u * p.index) / f32(params.ropeDim) * params.log2Base);
  let sc = sin_cos(p.pos * invFreq / factor);
  let s = sc.x;
  let c = sc.y;
  let x0 = x[p.a];
  let x1 = x[p.b];
  x[p.a] = x0 * c - x1 * s;
  x[p.b] = x0 * s + x1 * c;
}

@compute @workgroup_size(256)
fn rope(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let p = pair_of((wid.y * nwg.x + wid.x) * 256u + lid);
  if (p.valid) { rotate(p, 1.0); }
}

@compute @workgroup_size(256)
fn rope_factors(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) lid: u32) {
  let p = pair_of((wid.y * nwg.x + wid.x) * 256u + lid);
  if (p.valid) { rotate(p, freqFactors[p.index]); }
}
