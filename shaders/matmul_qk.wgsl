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
fn xq_word(i: u32) -> u32 {
  return XQ[i];
}

#include "qk_sums"

const XQ_BLOCK_WORDS: u32 = 81u;

/** i as f32 rounded to nearest even: two exact parts summed with one rounding. */
fn i32_to_f32(i: i32) -> f32 {
  let lo = i & 255;
  return f32(i - lo) + f32(lo);
}

/** (isum, imin) over sub-blocks sb0 .. sb0 + count - 1 of a Q4_K block, as f32. */
fn sums_q4_k(bw: u32, xb: u32, sb0: u32, count: u32) -> vec2<f32> {
  let s = qk_sums_q4_k(bw, xb, sb0, count);
  return vec2<f32>(i32_to_f32(s.x), i32_to_f32(s.y));
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
      let s = qk_lanes_q6_k(bw, xb);
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
