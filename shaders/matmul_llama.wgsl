// The llama.cpp kernel set's F32 / F16 matmul (numerics 'llama.cpp'): y[m, n] (+)= sum_k x[m, k] * W[n, k]
// summed in the order llama.cpp's x86 AVX2 build uses. Bindings as matmul.wgsl (0 Params,
// 1 W, 2 X: array<vec4<f32>> [M, K / 4], 3 Y), plus 4 rowPlaces (matmul_io.wgsl row_place).
// Defines: WTYPE (f32 or f16), ROWS = SPLIT = 1.
//
// rows_llama: one thread per output (n = wid.x * 64 + tid, m = wid.y), summed in the order
//   llama.cpp's x86 AVX2 build uses for that row: a row that is its sequence's only new token as
//   ggml_vec_dot_f32/_f16 (4 accumulators of 8 lanes over 32-element chunks, fused, reduced
//   ((a0 + a2) + (a1 + a3)) then ((t0 + t1) + (t2 + t3)), dims past the last chunk added in
//   double), other rows as tinyBLAS (8 lanes over 8-element chunks, fused, then
//   ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7))). A row is alone when its sequence has one
//   new token (matmul_io.wgsl row_place). Correct for any weight rows, but reads the weights once
//   per row: an exactness path, not a fast one.
#include "dequant"

#include "matmul_io"
@group(0) @binding(2) var<storage, read> X: array<vec4<f32>>;

const VEC4_PER_BLOCK: u32 = BLOCK_ELEMS_{{WTYPE}} / 4u;

/** Elements 4*c4 .. 4*c4+3 of a weight row whose first word is rowWord. */
fn load_w4(rowWord: u32, c4: u32) -> vec4<f32> {
  return dq4_{{WTYPE}}(rowWord + (c4 / VEC4_PER_BLOCK) * BLOCK_WORDS_{{WTYPE}}, c4 % VEC4_PER_BLOCK);
}

#include "exact"

/** ggml_vec_dot_f32 / ggml_vec_dot_f16 order; vec4 i of a 32-element chunk holds lanes of accumulator i / 2. */
fn dot_single_row_order(xBase: u32, rowWord: u32) -> f32 {
  var acc: array<vec4<f32>, 8>;
  let whole4 = params.k4 / 8u * 8u;
  for (var c4 = 0u; c4 < whole4; c4 += 8u) {
    for (var i = 0u; i < 8u; i++) { acc[i] = fma4(X[xBase + c4 + i], load_w4(rowWord, c4 + i), acc[i]); }
  }
  let lo = (acc[0] + acc[4]) + (acc[2] + acc[6]);
  let hi = (acc[1] + acc[5]) + (acc[3] + acc[7]);
  let t = lo + hi;
  var s = vec2<f32>((t.x + t.y) + (t.z + t.w), 0.0);
  for (var c4 = whole4; c4 < params.k4; c4++) {
    let p = X[xBase + c4] * load_w4(rowWord, c4);  // f32 products, summed in double there
    for (var i = 0u; i < 4u; i++) { s = ff_add(s, vec2<f32>(p[i], 0.0)); }
  }
  return s.x;
}

/** tinyBLAS order (K a multiple of 8): lanes 0-3 in lo, 4-7 in hi. */
fn dot_gemm_order(xBase: u32, rowWord: u32) -> f32 {
  var lo = vec4<f32>(0.0);
  var hi = vec4<f32>(0.0);
  for (var c4 = 0u; c4 < params.k4; c4 += 2u) {
    lo = fma4(X[xBase + c4], load_w4(rowWord, c4), lo);
    hi = fma4(X[xBase + c4 + 1u], load_w4(rowWord, c4 + 1u), hi);
  }
  let a = hi + lo;
  return (a.x + a.z) + (a.y + a.w);
}

@compute @workgroup_size(64)
fn rows_llama(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let n = wid.x * 64u + tid;
  let m = wid.y;
  if (n >= params.n || m >= params.m) { return; }
  let rowWord = n * params.wordsPerRow;
  if (row_place(m).y == 1u) {
    store_y(m, n, dot_single_row_order(m * params.k4, rowWord));
  } else {
    store_y(m, n, dot_gemm_order(m * params.k4, rowWord));
  }
}
