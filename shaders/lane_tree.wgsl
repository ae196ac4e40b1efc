// The fast set's tiled GEMM kernels (matmul.wgsl gemm_lanes, matmul_q8.wgsl gemm_lanes_q8,
// matmul_qk_gemv.wgsl gemm_lanes_qk) compute
// each output in exactly the GEMV's order (gemv_reduce.wgsl): SPLIT lane partials, lane l summing
// its chunks of K in order, then the lanes added in the tree stride SPLIT / 2 down to 1. A GEMM
// thread cannot hold SPLIT partials for each of its outputs, so it computes the lanes one after
// another in bit-reversed order (0, SPLIT/2, SPLIT/4, 3 SPLIT/4, ...): the tree's leaves from left
// to right. Then a finished lane merges into a stack of LOG_SPLIT + 1 slots, as a binary counter
// carries: after the t-th lane (t from 0), while bit h of t is set, slot h + the new value goes one
// level up. Each addition is one the tree makes (p_l + p_{l + stride}), so the result is the
// GEMV's bit for bit, for any SPLIT.
// The GEMMs' tile: LANE_TM x rows by LANE_TN weight rows per workgroup of 16x16 threads; thread
// (tx, ty) owns output o = 4 i + j: x row m0 + ty + 16 i (i < 2), weight row n0 + tx + 16 j (j < 4).
// Defines: SPLIT, LOG_SPLIT (log2 SPLIT). The including shader defines store_y (matmul_io.wgsl).

const LANE_TM: u32 = 32u;
const LANE_TN: u32 = 64u;
const LANE_OUTS: u32 = 8u;
const LOG_SPLIT: u32 = {{LOG_SPLIT}}u;
const TREE_SLOTS: u32 = LOG_SPLIT + 1u;

alias LaneSlots = array<array<f32, TREE_SLOTS>, LANE_OUTS>;

/** The lane the t-th pass computes: t with its LOG_SPLIT low bits reversed. */
fn lane_of_pass(t: u32) -> u32 {
  if (LOG_SPLIT == 0u) { return 0u; }
  return reverseBits(t) >> ((32u - LOG_SPLIT) & 31u); // the mask keeps the shift valid when LOG_SPLIT is 0
}

/** Merges the t-th pass's partial of output o into the stack; after the last pass slot LOG_SPLIT holds the sum. */
fn merge_lane(slots: ptr<function, LaneSlots>, o: u32, t: u32, partial: f32) {
  var v = partial;
  var h = 0u;
  while (h < LOG_SPLIT && ((t >> h) & 1u) == 1u) {
    v = (*slots)[o][h] + v;
    h++;
  }
  (*slots)[o][h] = v;
}

/** Merges the t-th pass's partials of all the thread's outputs. */
fn merge_lanes(slots: ptr<function, LaneSlots>, t: u32, partials: array<f32, LANE_OUTS>) {
  for (var o = 0u; o < LANE_OUTS; o++) { merge_lane(slots, o, t, partials[o]); }
}

/** Stores the thread's finished outputs (after the last pass) of the tile at (m0, n0). */
fn store_lanes(m0: u32, n0: u32, lid: vec3<u32>, slots: LaneSlots) {
  for (var o = 0u; o < LANE_OUTS; o++) {
    let m = m0 + lid.y + 16u * (o / 4u);
    let n = n0 + lid.x + 16u * (o % 4u);
    if (m < params.m && n < params.n) { store_y(m, n, slots[o][LOG_SPLIT]); }
  }
}
