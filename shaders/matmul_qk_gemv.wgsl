// The fast set's matmul of Q4_K / Q6_K weights: int8 Q8_K activations and exact integer block
// sums, as llama.cpp's CPU multiplies K-quants, in matmul.wgsl's GEMV layout (any M in row tiles,
// each weight block read once per tile for all of its rows). No emulation: hardware fma.
// Bindings: 0 uniform Params (matmul_io.wgsl), 1 W: array<u32> (dequant.wgsl layout of {{WTYPE}},
// q4_k or q6_k), 2 XQ: array<u32> (quantize_act.wgsl quant_q8_k layout: 81 words per 256-block;
// row m, block b at block m * K / 256 + b), 3 Y: array<f32>.
// Defines: WTYPE, ROWS, SPLIT, GEMV_THREADS, GEMV_COLS (gemv_reduce.wgsl).
//
// gemv: a group of SPLIT threads owns GEMV_COLS weight rows; thread lane l takes 256-blocks
//   l, l + SPLIT, ... in order. Per block the integer sums are exact (qk_sums.wgsl; each weight
//   sub-block is unpacked once and multiplied with every row of the tile), then
//     q4_k  acc = fma(-(dmin_w * d_x), f32(imin), fma(d_w * d_x, f32(isum), acc))
//     q6_k  acc = fma(d_w * d_x, f32(isum - 32 * scale-weighted bsums), acc)
//   and the lanes' accs are added in gemv_reduce.wgsl's fixed tree. The order depends on K and
//   SPLIT only: batch invariant. CPU reference: matmul.reference.ts matmulQKGemvRef.
#include "dequant"

#include "matmul_io"
@group(0) @binding(2) var<storage, read> XQ: array<u32>;

// QK_STAGED (the gemm_lanes_qk pipeline): x blocks come from workgroup memory, where the tile's
// LANE_TM rows of the current block are staged (row i at word i * XQ_BLOCK_WORDS).
const QK_STAGED: bool = {{QK_STAGED}};
var<workgroup> laneX: array<u32, select(1u, LANE_TM * 81u, QK_STAGED)>;

fn xq_word(i: u32) -> u32 {
  if (QK_STAGED) { return laneX[i]; }
  return XQ[i];
}

#include "qk_sums"

const XQ_BLOCK_WORDS: u32 = 81u;
const IS_Q6_K: bool = BLOCK_WORDS_{{WTYPE}} == BLOCK_WORDS_q6_k;

#include "gemv_reduce"

alias RowInts = array<i32, ROWS>;

/**
 * First word of the Q8_K block of x row r of the tile at m0, block b of nb. Staged (gemm_lanes_qk):
 * m0 is the thread's first row in the tile and its rows are 16 apart, in laneX.
 */
fn xq_block(m0: u32, r: u32, b: u32, nb: u32) -> u32 {
  if (QK_STAGED) { return (m0 + 16u * r) * XQ_BLOCK_WORDS; }
  return (gemv_x_row(m0, r) * nb + b) * XQ_BLOCK_WORDS;
}

/** acc[r] plus the Q4_K block at bw times block b of each row's x (weight quants unpacked once for all rows). */
fn add_block_q4_k(bw: u32, m0: u32, b: u32, nb: u32, accIn: array<f32, ROWS>) -> array<f32, ROWS> {
  var acc = accIn;
  var isum: RowInts;
  var imin: RowInts;
  for (var sb = 0u; sb < 8u; sb++) {
    let sm = scale_min_q4_k(bw, sb);
    var q4: array<u32, 8>;
    for (var j = 0u; j < 8u; j++) {
      q4[j] = (W[bw + 4u + 8u * (sb >> 1u) + j] >> (4u * (sb & 1u))) & 0x0f0f0f0fu;
    }
    for (var r = 0u; r < ROWS; r++) {
      let xb = xq_block(m0, r, b, nb);
      var s = 0;
      for (var j = 0u; j < 8u; j++) {
        s += dot4I8Packed(q4[j], xq_word(xb + 1u + 8u * sb + j));
      }
      isum[r] += sm.x * s;
      imin[r] += sm.y * (bitcast<i32>(xq_word(xb + 65u + 2u * sb)) + bitcast<i32>(xq_word(xb + 66u + 2u * sb)));
    }
  }
  let dm = unpack2x16float(W[bw]);
  for (var r = 0u; r < ROWS; r++) {
    let dx = bitcast<f32>(xq_word(xq_block(m0, r, b, nb)));
    acc[r] = fma(-(dm.y * dx), f32(imin[r]), fma(dm.x * dx, f32(isum[r]), acc[r]));
  }
  return acc;
}

/** acc[r] plus the Q6_K block at bw times block b of each row's x (weight quants unpacked once for all rows). */
fn add_block_q6_k(bw: u32, m0: u32, b: u32, nb: u32, accIn: array<f32, ROWS>) -> array<f32, ROWS> {
  var acc = accIn;
  var isum: RowInts;
  for (var g = 0u; g < 16u; g++) {
    let scale = scale_q6_k(bw, g);
    var q6: array<u32, 4>;
    for (var j = 0u; j < 4u; j++) {
      q6[j] = q6_k_quants(bw, 4u * g + j);
    }
    for (var r = 0u; r < ROWS; r++) {
      let xb = xq_block(m0, r, b, nb);
      var s = 0;
      for (var j = 0u; j < 4u; j++) {
        s += dot4I8Packed(q6[j], xq_word(xb + 1u + 4u * g + j));
      }
      isum[r] += scale * s;
    }
  }
  let d = unpack2x16float(W[bw + 52u]).x;
  for (var r = 0u; r < ROWS; r++) {
    let xb = xq_block(m0, r, b, nb);
    var offset = 0;
    for (var lane = 0u; lane < 8u; lane++) {
      offset += q6_k_offset(bw, xb, lane);
    }
    acc[r] = fma(d * bitcast<f32>(xq_word(xb)), f32(isum[r] - offset), acc[r]);
  }
  return acc;
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
      if (IS_Q6_K) {
        acc[c] = add_block_q6_k(bw, m0, b, nb, acc[c]);
      } else {
        acc[c] = add_block_q4_k(bw, m0, b, nb, acc[c]);
      }
    }
  }
  return acc;
}


// ------------------------------------------------------------------------------- gemm_lanes_qk

// The fast set's GEMM for prompt rows of Q4_K / Q6_K weights (pipeline with QK_STAGED, ROWS = 2):
// 32 x rows by 64 weight rows per workgroup. For each lane in turn (lane_tree.wgsl), block by
// block, the tile's 32 x blocks are staged in workgroup memory and each thread adds the block to
// its 2 x rows (ty, ty + 16) by 4 weight rows (tx + 16 j) with the GEMV's own add_block: the
// GEMV's bits. Weight blocks are read from global memory (the 16 threads of a column share them
// through the cache). Grid: (ceil(N / 64), ceil(M / 32)).
#include "lane_tree"

fn stage_qk_blocks(m0: u32, b: u32, nb: u32, tid: u32) {
  for (var e = tid; e < LANE_TM * XQ_BLOCK_WORDS; e += 256u) {
    let row = e / XQ_BLOCK_WORDS;
    var v = 0u;
    if (m0 + row < params.m) { v = XQ[((m0 + row) * nb + b) * XQ_BLOCK_WORDS + e % XQ_BLOCK_WORDS]; }
    laneX[e] = v;
  }
}

@compute @workgroup_size(16, 16)
fn gemm_lanes_qk(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
  @builtin(local_invocation_index) tid: u32,
) {
  let n0 = wid.x * LANE_TN;
  let m0 = wid.y * LANE_TM;
  let nb = params.k4 / 64u;
  var slots: LaneSlots;
  for (var t = 0u; t < SPLIT; t++) {
    let lane = lane_of_pass(t);
    var acc = array<array<f32, ROWS>, 4>();
    for (var b = lane; b < nb; b += SPLIT) {
      stage_qk_blocks(m0, b, nb, tid);
      workgroupBarrier();
      for (var j = 0u; j < 4u; j++) {
        let bw = min(n0 + lid.x + 16u * j, params.n - 1u) * params.wordsPerRow + b * BLOCK_WORDS_{{WTYPE}};
        if (IS_Q6_K) {
          acc[j] = add_block_q6_k(bw, lid.y, b, nb, acc[j]);
        } else {
          acc[j] = add_block_q4_k(bw, lid.y, b, nb, acc[j]);
        }
      }
      workgroupBarrier();
    }
    var partials: array<f32, LANE_OUTS>;
    for (var o = 0u; o < LANE_OUTS; o++) { partials[o] = acc[o % 4u][o / 4u]; } // acc[j][i]: output 4 i + j
    merge_lanes(&slots, t, partials);
  }
  store_lanes(m0, n0, lid, slots);
}
