// Integer matmul of Q8_0 / Q4_0 weights against Q8_0-quantized activations, as llama.cpp's CPU
// computes it (ggml_vec_dot_q8_0_q8_0 / ggml_vec_dot_q4_0_q8_0, x86 AVX2 path):
//   per 32-block b and lane j (elements 4j .. 4j+3, j < 8): isum_j = sum of 4 products of int8
//   weight quants (Q4_0: nibble - 8) and int8 activation quants, exact in i32 (dot4I8Packed);
//   acc[j] = fmaf(d_w * d_x, f32(isum_j), acc[j]) (fused: fma_exact), the blocks in order (d_w * d_x an f32 product,
//   as _mm256_set1_ps(fp16_to_fp32(x.d) * fp16_to_fp32(y.d)) and _mm256_fmadd_ps);
//   y = hsum_float_8(acc) = ((acc0 + acc4) + (acc2 + acc6)) + ((acc1 + acc5) + (acc3 + acc7)).
// Bindings: 0 uniform Params (as matmul.wgsl), 1 W: array<u32> (dequant.wgsl layout of {{WTYPE}},
// q8_0 or q4_0), 2 XQ: array<u32> (quantize_act.wgsl quant_q8_0 layout: 9 words per block,
// f32 d then 8 words of packed quants; row m, block b at block m * K / 32 + b), 3 Y: array<f32>.
// Defines: WTYPE, ROWS (gemv; 1 otherwise), SPLIT (lanes per output), LOG_SPLIT, REPACK and
// ONE_SUM (see below), FUSED_FMA (exact.wgsl).
//
// gemv: as matmul.wgsl's gemv, a group of SPLIT threads owns GEMV_COLS weight rows, each thread
//   takes blocks lane, lane + SPLIT, ... With SPLIT == 1 every output is accumulated in llama.cpp's
//   order exactly; with SPLIT > 1 each thread's 8 lanes are summed as above and the threads'
//   partials then added in a tree (the order differs from llama.cpp's by float rounding only).
//   The fast set (ONE_SUM): one integer sum and one hardware fma per block, lanes in the tree.
// gemm_lanes_q8 (the fast set's prompt rows on a GPU): the ONE_SUM order through workgroup tiles,
//   lane by lane (lane_tree.wgsl): the GEMV's bits.
// gemm_q8: 64x64 output tiles, one 32-block of K per step through workgroup memory, 256 threads
//   each computing 4x4 outputs with 8 lane accumulators apiece (llama.cpp's order exactly).
//   Grid: (ceil(N / 64), ceil(M / 64)).
#include "dequant"

#include "matmul_io"
#include "exact"
@group(0) @binding(2) var<storage, read> XQ: array<u32>;

const XQ_BLOCK_WORDS: u32 = 9u;

fn w_scale(bw: u32) -> f32 {
  return unpack2x16float(W[bw]).x;
}

/** Packed int8 weight quants of elements 4j .. 4j+3 of the block at word bw. */
fn wq_q8_0(bw: u32, j: u32) -> u32 {
  return W[bw + 1u + j];
}

fn wq_q4_0(bw: u32, j: u32) -> u32 {
  let v = (W[bw + 1u + (j & 3u)] >> (4u * (j >> 2u))) & 0x0f0f0f0fu;
  // Bytewise nibble - 8 as int8: (n + 128 - 8) - 128, with no borrow between bytes.
  return ((v | 0x80808080u) - 0x08080808u) ^ 0x80808080u;
}

fn wq(bw: u32, j: u32) -> u32 {
  return wq_{{WTYPE}}(bw, j);
}

// REPACK: llama.cpp's x86 repacked Q4_0 kernels (ggml_gemv/gemm_q4_0_8x8_q8_0, used for Q4_0
// weights with a multiple of 8 rows): one exact int sum per block and one fmaf per block,
// acc = fmaf(f32(isum), d_w * d_x, acc), no lanes. Expressed here as lane 0 taking the whole
// block sum: lanes 1..7 stay 0 and hsum8 adds exact zeros.
const REPACK: bool = {{REPACK}};

/** The 8 lane sums of one block pair (exact: |sum| <= 4 * 128 * 128), or the block sum in lane 0 (REPACK). */
fn lane_sums(w: array<u32, 8>, x: array<u32, 8>) -> array<vec4<i32>, 2> {
  let lo = vec4<i32>(dot4I8Packed(w[0], x[0]), dot4I8Packed(w[1], x[1]), dot4I8Packed(w[2], x[2]), dot4I8Packed(w[3], x[3]));
  let hi = vec4<i32>(dot4I8Packed(w[4], x[4]), dot4I8Packed(w[5], x[5]), dot4I8Packed(w[6], x[6]), dot4I8Packed(w[7], x[7]));
  if (REPACK) {
    let t = lo + hi;
    return array<vec4<i32>, 2>(vec4<i32>(t.x + t.y + t.z + t.w, 0, 0, 0), vec4<i32>(0));
  }
  return array<vec4<i32>, 2>(lo, hi);
}

/**
 * d * s + c rounded once, as _mm256_fmadd_ps, for f32 d and integers |s| < 2^17: d * s exactly
 * as p + pe (Dekker's product, d split into 12 + 12 bits by masking, |s| into its high and low
 * bytes: every partial product is exact), then summed with c rounding once (exact.wgsl).
 */
fn fma_exact(d: f32, s: vec4<i32>, c: vec4<f32>) -> vec4<f32> {
  if (FUSED_FMA) { return fma(vec4<f32>(d), vec4<f32>(s), c); }
  // |s| is split (a split of s itself is unbalanced for negative s and loses Dekker's exactness).
  let a = abs(s);
  let sg = vec4<f32>(sign(s));
  let p0 = d * vec4<f32>(a);
  let dh = bitcast<f32>(bitcast<u32>(d) & 0xfffff000u);
  let dl = d - dh;
  let sh = vec4<f32>(a & vec4<i32>(-256));
  let sl = vec4<f32>(a & vec4<i32>(255));
  let pe = sg * ((((dh * sh - p0) + dh * sl) + dl * sh) + dl * sl);
  return sum3_rn4(c, sg * p0, pe);
}

/** hsum_float_8 of lanes lo = 0..3, hi = 4..7. */
fn hsum8(lo: vec4<f32>, hi: vec4<f32>) -> f32 {
  let s = hi + lo;
  return (s.x + s.z) + (s.y + s.w);
}

// ---------------------------------------------------------------------------------------- gemv

#include "gemv_reduce"

// ONE_SUM (the fast set): one exact int sum per block and one fma per block into a single
// accumulator per output, acc = fma(d_w * d_x, f32(isum), acc): what REPACK computes, without its 8
// vec4 lanes per output in registers. The tiled GEMM below shares this order.
const ONE_SUM: bool = {{ONE_SUM}};

/** The exact integer sum of one block pair (as two independent vec4 sums: any order is exact). */
fn block_sum(w: array<u32, 8>, x: array<u32, 8>) -> i32 {
  let lo = vec4<i32>(dot4I8Packed(w[0], x[0]), dot4I8Packed(w[1], x[1]), dot4I8Packed(w[2], x[2]), dot4I8Packed(w[3], x[3]));
  let hi = vec4<i32>(dot4I8Packed(w[4], x[4]), dot4I8Packed(w[5], x[5]), dot4I8Packed(w[6], x[6]), dot4I8Packed(w[7], x[7]));
  let t = lo + hi;
  return (t.x + t.y) + (t.z + t.w);
}

fn gemv_accumulate(n0: u32, m0: u32, lane: u32) -> GemvSums {
  if (ONE_SUM) { return gemv_accumulate_one_sum(n0, m0, lane); }
  let nb = params.k4 / 8u;
  var rowWord: array<u32, GEMV_COLS>;
  for (var c = 0u; c < GEMV_COLS; c++) {
    rowWord[c] = min(n0 + c, params.n - 1u) * params.wordsPerRow;
  }
  // acc[c][r][h]: lanes 4h .. 4h+3
  var acc: array<array<array<vec4<f32>, 2>, ROWS>, GEMV_COLS>;
  for (var b = lane; b < nb; b += SPLIT) {
    var w: array<array<u32, 8>, GEMV_COLS>;
    var dw: array<f32, GEMV_COLS>;
    for (var c = 0u; c < GEMV_COLS; c++) {
      let bw = rowWord[c] + b * BLOCK_WORDS_{{WTYPE}};
      dw[c] = w_scale(bw);
      for (var j = 0u; j < 8u; j++) {
        w[c][j] = wq(bw, j);
      }
    }
    for (var r = 0u; r < ROWS; r++) {
      let xb = (gemv_x_row(m0, r) * nb + b) * XQ_BLOCK_WORDS;
      let dx = bitcast<f32>(XQ[xb]);
      var x: array<u32, 8>;
      for (var j = 0u; j < 8u; j++) {
        x[j] = XQ[xb + 1u + j];
      }
      for (var c = 0u; c < GEMV_COLS; c++) {
        let d = dw[c] * dx;
        let s = lane_sums(w[c], x);
        acc[c][r][0] = fma_exact(d, s[0], acc[c][r][0]);
        acc[c][r][1] = fma_exact(d, s[1], acc[c][r][1]);
      }
    }
  }
  var sums: GemvSums;
  for (var c = 0u; c < GEMV_COLS; c++) {
    for (var r = 0u; r < ROWS; r++) {
      sums[c][r] = hsum8(acc[c][r][0], acc[c][r][1]);
    }
  }
  return sums;
}



/** Block b of weight row n: its scale and packed quants. */
fn w_block(rowWord: u32, b: u32) -> WBlock {
  let bw = rowWord + b * BLOCK_WORDS_{{WTYPE}};
  var q: array<u32, 8>;
  for (var j = 0u; j < 8u; j++) { q[j] = wq(bw, j); }
  return WBlock(w_scale(bw), q);
}

/** One Q8_0-style block: its scale and 8 words of packed int8 quants (weights or activations). */
struct WBlock { d: f32, q: array<u32, 8> }

fn gemv_accumulate_one_sum(n0: u32, m0: u32, lane: u32) -> GemvSums {
  let nb = params.k4 / 8u;
  var rowWord: array<u32, GEMV_COLS>;
  for (var c = 0u; c < GEMV_COLS; c++) {
    rowWord[c] = min(n0 + c, params.n - 1u) * params.wordsPerRow;
  }
  var acc: GemvSums;
  for (var b = lane; b < nb; b += SPLIT) {
    var w: array<WBlock, GEMV_COLS>;
    for (var c = 0u; c < GEMV_COLS; c++) { w[c] = w_block(rowWord[c], b); }
    for (var r = 0u; r < ROWS; r++) {
      let xb = (gemv_x_row(m0, r) * nb + b) * XQ_BLOCK_WORDS;
      let dx = bitcast<f32>(XQ[xb]);
      var x: array<u32, 8>;
      for (var j = 0u; j < 8u; j++) { x[j] = XQ[xb + 1u + j]; }
      for (var c = 0u; c < GEMV_COLS; c++) {
        acc[c][r] = fma(w[c].d * dx, f32(block_sum(w[c].q, x)), acc[c][r]);
      }
    }
  }
  return acc;
}

// ------------------------------------------------------------------------------- gemm_lanes_q8

// The fast set's GEMM for prompt rows (ONE_SUM order): 32 x rows by 64 weight rows per
// workgroup; for each lane in turn (lane_tree.wgsl) its blocks go through workgroup memory
// STEP_BLOCKS at a time. 256 threads in a 16x16 grid; thread (tx, ty) computes rows
// m0 + ty + 16 i (i < 2), weight rows n0 + tx + 16 j (j < 4). Grid: (ceil(N / 64), ceil(M / 32)).
const STEP_BLOCKS: u32 = 2u;
// Staged block: word 0 the scale (f32 bits), words 1..8 the packed quants; 9 words (odd: rows
// of a warp fall in different banks).
const STAGED_WORDS: u32 = 9u;

#include "lane_tree"

var<workgroup> laneX: array<u32, LANE_TM * STEP_BLOCKS * STAGED_WORDS>;
var<workgroup> laneW: array<u32, LANE_TN * STEP_BLOCKS * STAGED_WORDS>;

fn stage_lane_blocks(m0: u32, n0: u32, lane: u32, first: u32, nb: u32, tid: u32) {
  for (var e = tid; e < (LANE_TM + LANE_TN) * STEP_BLOCKS * STAGED_WORDS; e += 256u) {
    let slot = e / STAGED_WORDS;     // row * STEP_BLOCKS + s
    let word = e % STAGED_WORDS;
    let row = slot / STEP_BLOCKS;
    let b = lane + (first + slot % STEP_BLOCKS) * SPLIT;
    if (row < LANE_TM) {
      var v = 0u;
      if (b < nb && m0 + row < params.m) { v = XQ[((m0 + row) * nb + b) * XQ_BLOCK_WORDS + word]; }
      laneX[e] = v;
    } else {
      let n = n0 + row - LANE_TM;
      var v = 0u;
      if (b < nb && n < params.n) {
        let bw = n * params.wordsPerRow + b * BLOCK_WORDS_{{WTYPE}};
        if (word == 0u) { v = bitcast<u32>(w_scale(bw)); } else { v = wq(bw, word - 1u); }
      }
      laneW[e - LANE_TM * STEP_BLOCKS * STAGED_WORDS] = v;
    }
  }
}

/** Block s of tile x row `row` as staged: its scale and packed quants. */
fn staged_x_block(row: u32, s: u32) -> WBlock {
  let at = (row * STEP_BLOCKS + s) * STAGED_WORDS;
  var q: array<u32, 8>;
  for (var j = 0u; j < 8u; j++) { q[j] = laneX[at + 1u + j]; }
  return WBlock(bitcast<f32>(laneX[at]), q);
}

/** Block s of tile weight row `row` as staged. */
fn staged_w_block(row: u32, s: u32) -> WBlock {
  let at = (row * STEP_BLOCKS + s) * STAGED_WORDS;
  var q: array<u32, 8>;
  for (var j = 0u; j < 8u; j++) { q[j] = laneW[at + 1u + j]; }
  return WBlock(bitcast<f32>(laneW[at]), q);
}

@compute @workgroup_size(16, 16)
fn gemm_lanes_q8(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
  @builtin(local_invocation_index) tid: u32,
) {
  let n0 = wid.x * LANE_TN;
  let m0 = wid.y * LANE_TM;
  let nb = params.k4 / 8u;
  var slots: LaneSlots;
  for (var t = 0u; t < SPLIT; t++) {
    let lane = lane_of_pass(t);
    let laneBlocks = (nb + SPLIT - 1u - lane) / SPLIT;
    var acc = array<f32, LANE_OUTS>();
    for (var first = 0u; first < laneBlocks; first += STEP_BLOCKS) {
      stage_lane_blocks(m0, n0, lane, first, nb, tid);
      workgroupBarrier();
      for (var s = 0u; s < min(STEP_BLOCKS, laneBlocks - first); s++) {
        // Each staged block read once per thread: the two x rows', then each weight row's.
        let x = array<WBlock, 2>(staged_x_block(lid.y, s), staged_x_block(lid.y + 16u, s));
        for (var j = 0u; j < 4u; j++) {
          let w = staged_w_block(lid.x + 16u * j, s);
          for (var i = 0u; i < 2u; i++) {
            acc[4u * i + j] = fma(w.d * x[i].d, f32(block_sum(w.q, x[i].q)), acc[4u * i + j]);
          }
        }
      }
      workgroupBarrier();
    }
    merge_lanes(&slots, t, acc);
  }
  store_lanes(m0, n0, lid, slots);
}

// ---------------------------------------------------------------------------------------- gemm

const TILE: u32 = 64u;

// One 32-block of K for 64 x rows and 64 weight rows: packed quants [row * 8 + j], scales [row].
var<workgroup> xq: array<u32, TILE * 8u>;
var<workgroup> xd: array<f32, TILE>;
var<workgroup> wqs: array<u32, TILE * 8u>;
var<workgroup> wd: array<f32, TILE>;

// 256 threads in a 16x16 grid; thread (tx, ty) computes rows m0 + ty + 16 i, columns n0 + tx + 16 j.
@compute @workgroup_size(16, 16)
fn gemm_q8(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
  @builtin(local_invocation_index) tid: u32,
) {
  let n0 = wid.x * TILE;
  let m0 = wid.y * TILE;
  let nb = params.k4 / 8u;
  // acc[(4 i + j) * 2 + h]: output (i, j), lanes 4h .. 4h+3
  var acc: array<vec4<f32>, 32>;
  for (var b = 0u; b < nb; b++) {
    for (var e = tid; e < TILE * 8u; e += 256u) {
      let row = e / 8u;
      let j = e % 8u;
      var xv = 0u;
      var wv = 0u;
      if (m0 + row < params.m) { xv = XQ[((m0 + row) * nb + b) * XQ_BLOCK_WORDS + 1u + j]; }
      if (n0 + row < params.n) { wv = wq((n0 + row) * params.wordsPerRow + b * BLOCK_WORDS_{{WTYPE}}, j); }
      xq[e] = xv;
      wqs[e] = wv;
    }
    if (tid < TILE) {
      var d = 0.0;
      if (m0 + tid < params.m) { d = bitcast<f32>(XQ[((m0 + tid) * nb + b) * XQ_BLOCK_WORDS]); }
      xd[tid] = d;
    } else if (tid < 2u * TILE) {
      let row = tid - TILE;
      var d = 0.0;
      if (n0 + row < params.n) { d = w_scale((n0 + row) * params.wordsPerRow + b * BLOCK_WORDS_{{WTYPE}}); }
      wd[row] = d;
    }
    workgroupBarrier();
    var w: array<array<u32, 8>, 4>;
    var dw: array<f32, 4>;
    for (var j = 0u; j < 4u; j++) {
      let col = lid.x + 16u * j;
      dw[j] = wd[col];
      for (var q = 0u; q < 8u; q++) {
        w[j][q] = wqs[col * 8u + q];
      }
    }
    for (var i = 0u; i < 4u; i++) {
      let row = lid.y + 16u * i;
      let dx = xd[row];
      var x: array<u32, 8>;
      for (var q = 0u; q < 8u; q++) {
        x[q] = xq[row * 8u + q];
      }
      for (var j = 0u; j < 4u; j++) {
        let d = dw[j] * dx;
        let s = lane_sums(w[j], x);
        let a = (4u * i + j) * 2u;
        acc[a] = fma_exact(d, s[0], acc[a]);
        acc[a + 1u] = fma_exact(d, s[1], acc[a + 1u]);
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 4u; i++) {
    let m = m0 + lid.y + 16u * i;
    for (var j = 0u; j < 4u; j++) {
      let n = n0 + lid.x + 16u * j;
      if (m < params.m && n < params.n) {
        let a = (4u * i + j) * 2u;
        store_y(m, n, hsum8(acc[a], acc[a + 1u]));
      }
    }
  }
}
