// Shared by the GEMV kernels (matmul.wgsl, matmul_q8.wgsl, matmul_qk_gemv.wgsl): the thread
// layout, the reduction of each thread's partial sums into the outputs, and (from
// gemv_tree_{{GEMV_TREE}}.wgsl: shared or subgroups) the entry point `gemv`. The including shader
// defines `fn store_y(m: u32, n: u32, v: f32)` and, anywhere in the module,
// `fn gemv_accumulate(n0: u32, m0: u32, lane: u32) -> GemvSums`.
// Defines: ROWS (x rows held in registers per row tile), SPLIT (threads sharing a weight-row
// pair's K), GEMV_THREADS (threads per workgroup, a multiple of SPLIT), GEMV_COLS (weight rows per
// thread group), GEMV_TREE (shared: the tree in workgroup memory; subgroups: the same additions
// as a subgroup butterfly where the subgroups allow it, see gemv_tree_subgroups.wgsl).
//
// Row tiles: workgroup z takes x rows m0 = z * ROWS .. m0 + ROWS - 1, so one kernel serves any M
// (decode rows and prompt rows alike). Every output is reduced in one order that depends on K,
// SPLIT and the weight only, never on M, ROWS or the tile: thread lane l sums vec4s (or blocks)
// l, l + SPLIT, ... in order, then lanes are added in a fixed tree (stride SPLIT / 2 down to 1).
// That is what makes a row's result independent of the rest of the batch (batch invariance).

const GEMV_THREADS: u32 = {{GEMV_THREADS}}u;       // threads per workgroup (64 on a GPU, 8 on a CPU adapter)
const GEMV_COLS: u32 = {{GEMV_COLS}}u;           // weight rows per thread group (2 on a GPU, 8 on a CPU adapter)
const SPLIT: u32 = {{SPLIT}}u;                   // threads sharing a group's K (power of 2, <= 64)
const GEMV_GROUPS: u32 = GEMV_THREADS / SPLIT;   // thread groups per workgroup
const ROWS: u32 = {{ROWS}}u;
const GEMV_SUMS: u32 = GEMV_COLS * ROWS;

// The reduction runs in rounds of PARTIAL_SUMS outputs, so its workgroup memory stays within 8 KB
// whatever ROWS, GEMV_COLS and GEMV_THREADS are: partials[i * GEMV_THREADS + thread] holds output
// s = round * PARTIAL_SUMS + i (s = col * ROWS + row). A single element when SPLIT == 1: no
// reduction, and nothing to zero-initialize.
const PARTIAL_SUMS: u32 = max(1u, min(GEMV_SUMS, 2048u / GEMV_THREADS));
var<workgroup> partials: array<f32, PARTIAL_SUMS * select(GEMV_THREADS, 1u, SPLIT == 1u)>;

alias GemvSums = array<array<f32, ROWS>, GEMV_COLS>;

/** First weight row of this thread's group (2D grid: linear workgroup index y * nwg.x + x). */
fn gemv_first_row(wid: vec3<u32>, nwg: vec3<u32>, tid: u32) -> u32 {
  return ((wid.y * nwg.x + wid.x) * GEMV_GROUPS + tid / SPLIT) * GEMV_COLS;
}

/** x row r of the tile at m0; rows past M repeat row M-1 (their sums are never stored). */
fn gemv_x_row(m0: u32, r: u32) -> u32 {
  return min(m0 + r, params.m - 1u);
}

/** Sums the SPLIT threads' partials of each output in workgroup memory and stores them. */
fn gemv_finish_shared(n0: u32, m0: u32, lane: u32, tid: u32, acc: GemvSums) {
  if (SPLIT == 1u) {
    for (var s = 0u; s < GEMV_SUMS; s++) {
      gemv_store(n0, m0, s, acc[s / ROWS][s % ROWS]);
    }
    return;
  }
  for (var s0 = 0u; s0 < GEMV_SUMS; s0 += PARTIAL_SUMS) {
    let count = min(PARTIAL_SUMS, GEMV_SUMS - s0);
    if (s0 > 0u) { workgroupBarrier(); } // the previous round's reads are done
    for (var i = 0u; i < count; i++) {
      partials[i * GEMV_THREADS + tid] = acc[(s0 + i) / ROWS][(s0 + i) % ROWS];
    }
    for (var stride = SPLIT / 2u; stride > 0u; stride >>= 1u) {
      workgroupBarrier();
      if (lane < stride) {
        for (var i = 0u; i < count; i++) {
          partials[i * GEMV_THREADS + tid] += partials[i * GEMV_THREADS + tid + stride];
        }
      }
    }
    workgroupBarrier();
    for (var i = lane; i < count; i += SPLIT) {
      gemv_store(n0, m0, s0 + i, partials[i * GEMV_THREADS + tid - lane]);
    }
  }
}

fn gemv_store(n0: u32, m0: u32, s: u32, v: f32) {
  let n = n0 + s / ROWS;
  let m = m0 + s % ROWS;
  if (m < params.m && n < params.n) {
    store_y(m, n, v);
  }
}

#include "gemv_tree_{{GEMV_TREE}}"
