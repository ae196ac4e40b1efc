// Integer matmul of Q4_K / Q6_K weights against Q8_K-quantized activations, as llama.cpp's x86
// AVX2 build computes it. Bindings: 0 uniform Params (matmul_io.wgsl), 1 W: array<u32>
// (dequant.wgsl layout of {{WTYPE}}), 2 XQ: array<u32> (quantize_act.wgsl quant_q8_k layout: 81
// words per 256-block; row m, block b at block m * K / 256 + b), 3 Y: array<f32>.
// Defines: WTYPE (q4_k or q6_k).
//
// rows_qk: one thread per output (n = wid.x * 64 + tid, m = wid.y). Sums of int8 products are
// exact in i32; they become f32 rounded to nearest (i32_to_f32) as _mm256_cvtepi32_ps does.
//   q6_k  ggml_vec_dot_q6_K_q8_K: per 256-block, 8 lanes; lane L sums scale * q6 * q8 over
//         elements 32 c + 4 L .. +3 of every 32-chunk c with q6 unsigned (0..63), minus
//         32 * (scale-weighted bsums of elements 32 L .. 32 L + 31); acc_L = fmaf(d_x * d_w,
//         f32(lane), acc_L); the output is hsum_float_8(acc) = ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7)).
//   q4_k  ggml_gemv/gemm_q4_K_8x8_q8_K (weights with a multiple of 8 rows are repacked): integer
//         sums isum of scale * q4 * q8 and imin of min * bsum32 over a span of sub-blocks, then
//         acc = fmaf(f32(isum), d_w * d_x, acc), accMin = fmaf(f32(imin), dmin_w * d_x, accMin);
//         the output is acc - accMin. The span is the whole 256-block in gemv (rows past the last
//         whole group of 4 in llama.cpp's batch), a pair of sub-blocks in gemm (rows in groups of 4;
//         matmul_io.wgsl row_place says which).
#include "dequant"

#include "matmul_io"
#include "exact"
@group(0) @binding(2) var<storage, read> XQ: array<u32>;

const XQ_BLOCK_WORDS: u32 = 81u;

/** i as f32 rounded to nearest even: two exact parts summed with one rounding. */
fn i32_to_f32(i: i32) -> f32 {
  let lo = i & 255;
  return f32(i - lo) + f32(lo);
}

fn scale_min_q4_k(bw: u32, sb: u32) -> vec2<i32> {
  return vec2<i32>(dq_q4_k_scale_min(bw, sb));
}

/** (isum, imin) over sub-blocks sb0 .. sb0 + count - 1 of a Q4_K block, as f32. */
fn sums_q4_k(bw: u32, xb: u32, sb0: u32, count: u32) -> vec2<f32> {
  var isum = 0;
  var imin = 0;
  for (var sb = sb0; sb < sb0 + count; sb++) {
    let sm = scale_min_q4_k(bw, sb);
    let chunk = sb >> 1u;
    let high = sb & 1u;
    var s = 0;
    for (var j = 0u; j < 8u; j++) {
      let q4 = (W[bw + 4u + 8u * chunk + j] >> (4u * high)) & 0x0f0f0f0fu;
      s += dot4I8Packed(q4, XQ[xb + 1u + 8u * sb + j]);
    }
    isum += sm.x * s;
    imin += sm.y * (bitcast<i32>(XQ[xb + 65u + 2u * sb]) + bitcast<i32>(XQ[xb + 66u + 2u * sb]));
  }
  return vec2<f32>(i32_to_f32(isum), i32_to_f32(imin));
}

fn scale_q6_k(bw: u32, g: u32) -> i32 {
  return bitcast<i32>(W[bw + 48u + (g >> 2u)] << (24u - 8u * (g & 3u))) >> 24u;
}

/** The 8 lane sums of one Q6_K block (see the header). */
fn lanes_q6_k(bw: u32, xb: u32) -> array<i32, 8> {
  var lanes: array<i32, 8>;
  for (var e4 = 0u; e4 < 64u; e4++) {
    let e = 4u * e4;
    let part = e >> 7u;
    let quarter = (e >> 5u) & 3u;
    let l = e & 31u;
    let ql = (W[bw + 16u * part + 8u * (quarter & 1u) + (l >> 2u)] >> (4u * (quarter >> 1u))) & 0x0f0f0f0fu;
    let qh = (W[bw + 32u + 8u * part + (l >> 2u)] >> (2u * quarter)) & 0x03030303u;
    lanes[e4 & 7u] += scale_q6_k(bw, e >> 4u) * dot4I8Packed(ql | (qh << 4u), XQ[xb + 1u + e4]);
  }
  for (var lane = 0u; lane < 8u; lane++) {
    let g = 2u * lane;
    let bsums = scale_q6_k(bw, g) * bitcast<i32>(XQ[xb + 65u + g]) + scale_q6_k(bw, g + 1u) * bitcast<i32>(XQ[xb + 66u + g]);
    lanes[lane] -= 32 * bsums;
  }
  return lanes;
}

@compute @workgroup_size(64)
fn rows_qk(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let n = wid.x * 64u + tid;
  let m = wid.y;
  if (n >= params.n || m >= params.m) { return; }
  let nb = params.k4 / 64u;
  let rowWord = n * params.wordsPerRow;
  var lo = vec4<f32>(0.0);
  var hi = vec4<f32>(0.0);
  var accMin = 0.0;
  let place = row_place(m);
  let span = select(8u, 2u, place.x < place.y / 4u * 4u);  // gemm rows: sub-block pairs
  for (var b = 0u; b < nb; b++) {
    let bw = rowWord + b * BLOCK_WORDS_{{WTYPE}};
    let xb = (m * nb + b) * XQ_BLOCK_WORDS;
    let dx = bitcast<f32>(XQ[xb]);
    if (BLOCK_WORDS_{{WTYPE}} == BLOCK_WORDS_q6_k) {
      let d = vec4<f32>(dx * unpack2x16float(W[bw + 52u]).x);
      let s = lanes_q6_k(bw, xb);
      lo = fma4(d, vec4<f32>(i32_to_f32(s[0]), i32_to_f32(s[1]), i32_to_f32(s[2]), i32_to_f32(s[3])), lo);
      hi = fma4(d, vec4<f32>(i32_to_f32(s[4]), i32_to_f32(s[5]), i32_to_f32(s[6]), i32_to_f32(s[7])), hi);
    } else {
      let dm = unpack2x16float(W[bw]);
      let scales = vec4<f32>(dm.x * dx, dm.y * dx, 0.0, 0.0);
      for (var sb = 0u; sb < 8u; sb += span) {
        let r = fma4(vec4<f32>(sums_q4_k(bw, xb, sb, span), 0.0, 0.0), scales, vec4<f32>(lo.x, accMin, 0.0, 0.0));
        lo.x = r.x;
        accMin = r.y;
      }
    }
  }
  let s = hi + lo;
  store_y(m, n, ((s.x + s.z) + (s.y + s.w)) - accMin);
}
