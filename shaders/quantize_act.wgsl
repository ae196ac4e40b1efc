// Activation rounding before a matmul, as llama.cpp's CPU backend does it: ggml_compute_forward_
// mul_mat converts x to the weight type's vec_dot_type before the dot products, so its results
// are those of x rounded onto that type's grid. XR = x' written as f32, same shape as X, for the
// matmul kernels to read instead of X (src/model/kernels/matmul.ts picks the entry point).
// Bindings: 0 uniform Params, 1 X: array<vec4<f32>> (dense [M, K]), 2 XR: array<vec4<f32>> (same).
// One thread per unit (a block, or a vec4 for the float grids); 2D grid, linear workgroup index
// y * nwg.x + x. K is a multiple of the unit (the weight's block size guarantees it).
//
//   round_q8_0  Q8_0 / Q4_0 weights: blocks of 32 as quantize_row_q8_0's x86 AVX2 path:
//               amax = max |x|, d = amax / 127 stored as f16, id = 127 / amax (f32; not 1 / d),
//               q = round-half-even(x * id) (_mm256_round_ps), x' = f16(d) * q. (The scalar
//               quantize_row_q8_0_ref differs only on ties: id = 1 / d, roundf.)
//   round_q8_k  Q4_K / Q6_K weights: blocks of 256 as quantize_row_q8_K_ref (used on x86, and
//               what the AVX2 4x8 repack quantizer computes): max = first x of largest |x|,
//               iscale = -127 / max, q = min(127, nearest_int(iscale * x)) (half-even),
//               d = 1 / iscale kept as f32, x' = d * q.
//   round_f16   F16 weights: x rounded to f16 (round to nearest even, as F16C).
//   round_bf16  BF16 weights: x rounded to bf16 (round to nearest even).
//
// The scales must be IEEE-exact: WGSL promises only 2.5 ULP for '/' and leaves the rounding of
// f32 -> f16 conversions open, so div_rn and f16_grid do both in integer arithmetic ('*' and
// round() are exact / half-even in WGSL).
//
//   quant_q8_0  the same Q8_0 quantization, but written as int8 quants for the integer matmul
//               (shaders/matmul_q8.wgsl; Q8_0 / Q4_0 weights): XQ: array<u32>, 9 words per block
//               of 32 (blocks of the flat [M, K] array in order, so row m, block b is block
//               m * K / 32 + b): word 0 = f32 bits of d (the f16-rounded scale), words 1..8 = the
//               32 quants, element 4 j + i in byte i of word 1 + j (two's complement).
//               Bindings: 0 Params, 1 X, 2 XQ (same binding as XR; entry points use one of them).
//
//   quant_q8_k  the Q8_K quantization above as int8 quants for the K-quant integer matmul
//               (shaders/matmul_qk.wgsl): XQ: array<u32>, 81 words per block of 256: word 0 = f32
//               bits of d, words 1..64 = the 256 quants (element 4 j + i in byte i of word 1 + j),
//               words 65..80 = bsums (i32 sums of each 16 quants), as block_q8_K.

struct Params {
  units: u32,  // blocks (q8_0, q8_k) or vec4s (f16, bf16) to round
  _pad0: u32,
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> X: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> XR: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> XQ: array<u32>;

fn unit_index(wid: vec3<u32>, nwg: vec3<u32>, tid: u32) -> u32 {
  return (wid.y * nwg.x + wid.x) * 64u + tid;
}

#include "exact"

fn f16_grid4(v: vec4<f32>) -> vec4<f32> {
  return vec4<f32>(f16_grid(v.x), f16_grid(v.y), f16_grid(v.z), f16_grid(v.w));
}

/** x rounded to the nearest bf16 value (ties to even), as an f32. */
fn bf16_grid(x: f32) -> f32 {
  let u = bitcast<u32>(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) {
    return x;  // NaN
  }
  return bitcast<f32>((u + 0x7fffu + ((u >> 16u) & 1u)) & 0xffff0000u);
}

fn vmax(v: vec4<f32>) -> f32 {
  return max(max(v.x, v.y), max(v.z, v.w));
}

/** One Q8_0 block as llama.cpp quantizes it: d rounded to f16, quants round(x * 127 / amax). */
struct Q8Block {
  d: f32,
  q: array<vec4<f32>, 8>,
}

fn q8_0_block(b: u32) -> Q8Block {
  let base = b * 8u;
  var v: array<vec4<f32>, 8>;
  var amax = 0.0;
  for (var i = 0u; i < 8u; i++) {
    v[i] = X[base + i];
    amax = max(amax, vmax(abs(v[i])));
  }
  var block: Q8Block;
  var id = 0.0;
  if (amax != 0.0) {
    block.d = f16_grid(div_rn(amax, 127.0));
    id = div_rn(127.0, amax);
  }
  for (var i = 0u; i < 8u; i++) {
    block.q[i] = clamp(round(v[i] * id), vec4<f32>(-128.0), vec4<f32>(127.0));
  }
  return block;
}

@compute @workgroup_size(64)
fn round_q8_0(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) tid: u32,
) {
  let b = unit_index(wid, nwg, tid);
  if (b >= params.units) {
    return;
  }
  let block = q8_0_block(b);
  for (var i = 0u; i < 8u; i++) {
    XR[b * 8u + i] = block.q[i] * block.d;
  }
}

/** Four quants (each in [-128, 127]) as packed int8, element i in byte i. */
fn pack_i8x4(q: vec4<f32>) -> u32 {
  let b = bitcast<vec4<u32>>(vec4<i32>(q)) & vec4<u32>(0xffu);
  return b.x | (b.y << 8u) | (b.z << 16u) | (b.w << 24u);
}

@compute @workgroup_size(64)
fn quant_q8_0(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) tid: u32,
) {
  let b = unit_index(wid, nwg, tid);
  if (b >= params.units) {
    return;
  }
  let block = q8_0_block(b);
  let out = b * 9u;
  XQ[out] = bitcast<u32>(block.d);
  for (var i = 0u; i < 8u; i++) {
    XQ[out + 1u + i] = pack_i8x4(block.q[i]);
  }
}

/** (iscale, d) of Q8_K block b (64 vec4s of X): max = first x of largest |x|, iscale = -127 / max, d = 1 / iscale. */
fn q8_k_scales(b: u32) -> vec2<f32> {
  var amax = 0.0;
  var mx = 0.0;
  for (var i = 0u; i < 64u; i++) {
    let v = X[b * 64u + i];
    for (var c = 0u; c < 4u; c++) {
      let a = abs(v[c]);
      if (a > amax) {
        amax = a;
        mx = v[c];
      }
    }
  }
  if (amax == 0.0) { return vec2<f32>(0.0); }
  let s = div_rn(127.0, amax);
  return vec2<f32>(select(s, -s, mx > 0.0), select(1.0, -1.0, mx > 0.0) * div_rn(1.0, s));
}

@compute @workgroup_size(64)
fn round_q8_k(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) tid: u32,
) {
  let b = unit_index(wid, nwg, tid);
  if (b >= params.units) {
    return;
  }
  let base = b * 64u;
  let scales = q8_k_scales(b);
  let iscale = scales.x;
  let d = scales.y;
  for (var i = 0u; i < 64u; i++) {
    XR[base + i] = min(round(X[base + i] * iscale), vec4<f32>(127.0)) * d;
  }
}

@compute @workgroup_size(64)
fn round_f16(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) tid: u32,
) {
  let i = unit_index(wid, nwg, tid);
  if (i < params.units) {
    XR[i] = f16_grid4(X[i]);
  }
}

@compute @workgroup_size(64)
fn round_bf16(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) tid: u32,
) {
  let i = unit_index(wid, nwg, tid);
  if (i < params.units) {
    let v = X[i];
    XR[i] = vec4<f32>(bf16_grid(v.x), bf16_grid(v.y), bf16_grid(v.z), bf16_grid(v.w));
  }
}

/** Q8_K blocks as quantize_row_q8_K_ref (see round_q8_k), written as int8 quants with d and bsums. */
@compute @workgroup_size(64)
fn quant_q8_k(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) tid: u32,
) {
  let b = unit_index(wid, nwg, tid);
  if (b >= params.units) {
    return;
  }
  let base = b * 64u;
  let scales = q8_k_scales(b);
  let iscale = scales.x;
  let d = scales.y;
  let out = b * 81u;
  XQ[out] = bitcast<u32>(d);
  for (var g = 0u; g < 16u; g++) {
    var bsum = 0;
    for (var i = 0u; i < 4u; i++) {
      let q = vec4<i32>(min(round(X[base + 4u * g + i] * iscale), vec4<f32>(127.0)));
      bsum += q.x + q.y + q.z + q.w;
      XQ[out + 1u + 4u * g + i] = pack4xI8(q);
    }
    XQ[out + 65u + g] = bitcast<u32>(bsum);
  }
}
