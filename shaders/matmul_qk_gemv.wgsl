// The fast set's matmul of Q4_K / Q6_K weights: int8 Q8_K activations and exact integer block
// sums, as llama.cpp's CPU multiplies K-quants, in matmul.wgsl's GEMV layout (any M in row tiles,
// each weight block read once per tile for all of its rows). No emulation: hardware fma.
// Bindings: 0 uniform Params (matmul_io.wgsl), 1 W: array<u32> (dequant.wgsl layout of {{WTYPE}},
// q4_k or q6_k), 2 XQ: array<u32> (quantize_act.wgsl quant_q8_k layout: 81 words per 256-block;
// row m, block b at block m * K / 256 + b), 3 Y: array<f32>.
// Defines: WTYPE, ROWS, SPLIT, GEMV_THREADS, GEMV_COLS (gemv_reduce.wgsl).
//
// gemv_qk: a group of SPLIT threads owns GEMV_COLS weight rows; thread lane l takes 256-blocks
//   l, l + SPLIT, ... in order. Per block the integer sums are exact (qk_sums.wgsl), then
//     q4_k  acc = fma(d_w * d_x, f32(isum), acc); acc = fma(-(dmin_w * d_x), f32(imin), acc)
//     q6_k  acc = fma(d_w * d_x, f32(isum), acc)
//   and the lanes' accs are added in gemv_reduce.wgsl's fixed tree. The order depends on K and
//   SPLIT only: batch invariant. CPU reference: matmul.reference.ts matmulQKGemvRef.
#include "dequant"

#include "matmul_io"
@group(0) @binding(2) var<storage, read> XQ: array<u32>;
#include "qk_sums"

const XQ_BLOCK_WORDS: u32 = 81u;
const IS_Q6_K: bool = BLOCK_WORDS_{{WTYPE}} == BLOCK_WORDS_q6_k;

#include "gemv_reduce"

/** acc plus one block pair's contribution (the header's formulas). */
fn add_block(bw: u32, xb: u32, acc: f32) -> f32 {
  let dx = bitcast<f32>(XQ[xb]);
  if (IS_Q6_K) {
    return fma(unpack2x16float(W[bw + 52u]).x * dx, f32(qk_sum_q6_k(bw, xb)), acc);
  }
  let dm = unpack2x16float(W[bw]);
  let s = qk_sums_q4_k(bw, xb, 0u, 8u);
  return fma(-(dm.y * dx), f32(s.y), fma(dm.x * dx, f32(s.x), acc));
}

fn gemv_accumulate(n0: u32, m0: u32, lane: u32) -> GemvSums {
  let nb = params.k4 / 64u;
  var rowWord: array<u32, GEMV_COLS>;
  for (var c = 0u; c < GEMV_COLS; c++) {
    rowWord[c] = min(n0 + c, params.n - 1u) * params.wordsPerRow;
  }
  var acc: GemvSums;
  for (var b = lane; b < nb; b += SPLIT) {
    for (var c = 0u; c < GEMV_COLS; c++) {
      let bw = rowWord[c] + b * BLOCK_WORDS_{{WTYPE}};
      for (var r = 0u; r < ROWS; r++) {
        acc[c][r] = add_block(bw, (gemv_x_row(m0, r) * nb + b) * XQ_BLOCK_WORDS, acc[c][r]);
      }
    }
  }
  return acc;
}

@compute @workgroup_size(GEMV_THREADS)
fn gemv_qk(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) tid: u32,
) {
  let lane = tid % SPLIT;
  let n0 = gemv_first_row(wid, nwg, tid);
  let m0 = wid.z * ROWS;
  gemv_finish(n0, m0, lane, tid, gemv_accumulate(n0, m0, lane));
}
