// Matmul against a GGUF weight dequantized in the kernel: y[m, n] (+)= sum_k x[m, k] * W[n, k].
// Bindings: 0 uniform Params, 1 W: array<u32> (N rows of K elements of type {{WTYPE}} in the
// dequant.wgsl GPU layout), 2 X: array<vec4<f32>> row-major [M, K / 4], 3 Y: array<f32> [M, N].
// Defines: WTYPE (weight type), ROWS (gemv: x rows per row tile; 1 otherwise), SPLIT (lanes per
// output, 1..64, chosen from K and the weight type only), LOG_SPLIT, GEMV_THREADS, GEMV_COLS.
// K must be a multiple of 4.
//
// The fast set's order for every output (batch invariant): lane l of SPLIT sums the chunks of
//   CHUNK_V4 vec4s l, l + SPLIT, ... in order (acc += dot(x4, w4)), then the lanes are added in a
//   fixed tree (stride SPLIT / 2 down to 1). It depends on K and SPLIT only, never on M.
// gemv (decode rows; prompt rows on a CPU adapter; the llama.cpp set's decode path): a group of
//   SPLIT threads owns GEMV_COLS weight rows; each thread dequantizes its lane's vec4s ONCE and
//   applies each to all ROWS x rows of its row tile, then the group sums its lanes' partials
//   (gemv_reduce.wgsl). Grid: (x, y) weight row groups folded as y * nwg.x + x, z row tiles.
// gemm_lanes (the fast set's prompt rows on a GPU): 32 x rows by 64 weight rows per workgroup,
//   x and dequantized W staged in workgroup memory, the lanes computed one after another and
//   merged as the tree adds them (lane_tree.wgsl): the GEMV's bits. Grid: (ceil(N / 64), ceil(M / 32)).
// gemm (llama.cpp set, large M of types without a llama.cpp-order kernel): 64x64 output tiles, K
//   in steps of 32 through workgroup memory (x and dequantized W tiles stored k-major), each of 64
//   threads computing an 8x8 block. Grid: (ceil(N / 64), ceil(M / 64)).
// matmul_llama.wgsl has rows_llama, the llama.cpp set's F32 / F16 kernel.
#include "dequant"

#include "matmul_io"
@group(0) @binding(2) var<storage, read> X: array<vec4<f32>>;

const VEC4_PER_BLOCK: u32 = BLOCK_ELEMS_{{WTYPE}} / 4u;

/** Elements 4*c4 .. 4*c4+3 of a weight row whose first word is rowWord. */
fn load_w4(rowWord: u32, c4: u32) -> vec4<f32> {
  return dq4_{{WTYPE}}(rowWord + (c4 / VEC4_PER_BLOCK) * BLOCK_WORDS_{{WTYPE}}, c4 % VEC4_PER_BLOCK);
}

// ---------------------------------------------------------------------------------------- gemv

#include "gemv_reduce"

// Lane chunks: lane l of SPLIT sums the chunks of CHUNK_V4 consecutive vec4s l, l + SPLIT, ...
// (a chunk is 32 bytes of an F16 / BF16 row, 64 of an F32 one), each chunk's vec4s in order.
const CHUNK_V4: u32 = 4u;

fn chunk_count() -> u32 {
  return (params.k4 + CHUNK_V4 - 1u) / CHUNK_V4;
}

/** This thread's share (lane chunks, see CHUNK_V4) of the sums of GEMV_COLS weight rows from n0. */
fn gemv_accumulate(n0: u32, m0: u32, lane: u32) -> GemvSums {
  var rowWord: array<u32, GEMV_COLS>;
  for (var c = 0u; c < GEMV_COLS; c++) {
    rowWord[c] = min(n0 + c, params.n - 1u) * params.wordsPerRow;
  }
  var acc: GemvSums;
  for (var chunk = lane; chunk < chunk_count(); chunk += SPLIT) {
    let end = min(chunk * CHUNK_V4 + CHUNK_V4, params.k4);
    for (var c4 = chunk * CHUNK_V4; c4 < end; c4++) {
      var w: array<vec4<f32>, GEMV_COLS>;
      for (var c = 0u; c < GEMV_COLS; c++) {
        w[c] = load_w4(rowWord[c], c4);
      }
      for (var r = 0u; r < ROWS; r++) {
        let x = X[gemv_x_row(m0, r) * params.k4 + c4];
        for (var c = 0u; c < GEMV_COLS; c++) {
          acc[c][r] += dot(x, w[c]);
        }
      }
    }
  }
  return acc;
}

// ---------------------------------------------------------------------------------- gemm_lanes

// The fast set's GEMM for prompt rows: 32 x rows by 64 weight rows per workgroup, every output
// summed in the GEMV's order (lane_tree.wgsl): for each lane in turn, the lane's chunks go through
// workgroup memory STEP_CHUNKS at a time. 256 threads in a 16x16 grid; thread (tx, ty) computes
// rows m0 + ty + 16 i (i < 2), weight rows n0 + tx + 16 j (j < 4). Grid: (ceil(N / 64), ceil(M / 32)).
const STEP_CHUNKS: u32 = 2u;
const STEP_V4: u32 = STEP_CHUNKS * CHUNK_V4;
const STAGE_STRIDE: u32 = STEP_V4 + 1u; // padded rows: threads of a warp read different banks

#include "lane_tree"

var<workgroup> laneX: array<vec4<f32>, LANE_TM * STAGE_STRIDE>;
var<workgroup> laneW: array<vec4<f32>, LANE_TN * STAGE_STRIDE>;

/** vec4 q of a step that starts at chunk `first` of `lane`, or k4 (past the end) when there is none. */
fn step_c4(lane: u32, first: u32, q: u32) -> u32 {
  let chunk = lane + (first + q / CHUNK_V4) * SPLIT;
  if (chunk >= chunk_count()) { return params.k4; }
  return min(chunk * CHUNK_V4 + q % CHUNK_V4, params.k4);
}

fn stage_lane_step(m0: u32, n0: u32, lane: u32, first: u32, tid: u32) {
  for (var e = tid; e < (LANE_TM + LANE_TN) * STEP_V4; e += 256u) {
    let row = e / STEP_V4;
    let q = e % STEP_V4;
    let c4 = step_c4(lane, first, q);
    if (row < LANE_TM) {
      var v = vec4<f32>(0.0);
      if (c4 < params.k4 && m0 + row < params.m) { v = X[(m0 + row) * params.k4 + c4]; }
      laneX[row * STAGE_STRIDE + q] = v;
    } else {
      let n = n0 + row - LANE_TM;
      var v = vec4<f32>(0.0);
      if (c4 < params.k4 && n < params.n) { v = load_w4(n * params.wordsPerRow, c4); }
      laneW[(row - LANE_TM) * STAGE_STRIDE + q] = v;
    }
  }
}

@compute @workgroup_size(16, 16)
fn gemm_lanes(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
  @builtin(local_invocation_index) tid: u32,
) {
  let n0 = wid.x * LANE_TN;
  let m0 = wid.y * LANE_TM;
  var slots: LaneSlots;
  for (var t = 0u; t < SPLIT; t++) {
    let lane = lane_of_pass(t);
    let laneChunks = (chunk_count() + SPLIT - 1u - lane) / SPLIT;
    var acc = array<f32, LANE_OUTS>();
    for (var first = 0u; first < laneChunks; first += STEP_CHUNKS) {
      stage_lane_step(m0, n0, lane, first, tid);
      workgroupBarrier();
      for (var q = 0u; q < STEP_V4; q++) {
        if (step_c4(lane, first, q) >= params.k4) { break; }
        // Each staged vec4 read once per thread: the two x rows, then each weight row.
        let x = array<vec4<f32>, 2>(laneX[lid.y * STAGE_STRIDE + q], laneX[(lid.y + 16u) * STAGE_STRIDE + q]);
        for (var j = 0u; j < 4u; j++) {
          let w = laneW[(lid.x + 16u * j) * STAGE_STRIDE + q];
          for (var i = 0u; i < 2u; i++) { acc[4u * i + j] += dot(x[i], w); }
        }
      }
      workgroupBarrier();
    }
    merge_lanes(&slots, t, acc);
  }
  store_lanes(m0, n0, lid, slots);
}

// ---------------------------------------------------------------------------------------- gemm

const TILE: u32 = 64u;       // output rows and columns per workgroup
const TILE_K4: u32 = 8u;     // K step, in vec4s (32 elements)
const TILE_V: u32 = TILE / 4u;

// k-major tiles: xs[k * TILE_V + m / 4][m % 4] = x[m0 + m, k0 + k]; ws likewise for W rows.
var<workgroup> xs: array<vec4<f32>, TILE_K4 * 4u * TILE_V>;
var<workgroup> ws: array<vec4<f32>, TILE_K4 * 4u * TILE_V>;

fn gemm_load_tiles(m0: u32, n0: u32, k0: u32, tid: u32) {
  for (var i = tid; i < TILE * TILE_K4; i += 64u) {
    let row = i / TILE_K4;
    let kq = i % TILE_K4;
    let c4 = k0 + kq;
    var xv = vec4<f32>(0.0);
    var wv = vec4<f32>(0.0);
    if (c4 < params.k4) {
      if (m0 + row < params.m) { xv = X[(m0 + row) * params.k4 + c4]; }
      if (n0 + row < params.n) { wv = load_w4((n0 + row) * params.wordsPerRow, c4); }
    }
    let at = kq * 4u * TILE_V + row / 4u;
    let lane = row % 4u;
    xs[at][lane] = xv.x;
    xs[at + TILE_V][lane] = xv.y;
    xs[at + 2u * TILE_V][lane] = xv.z;
    xs[at + 3u * TILE_V][lane] = xv.w;
    ws[at][lane] = wv.x;
    ws[at + TILE_V][lane] = wv.y;
    ws[at + 2u * TILE_V][lane] = wv.z;
    ws[at + 3u * TILE_V][lane] = wv.w;
  }
}

// 64 threads in an 8x8 grid; thread (tx, ty) computes rows m0 + 8 ty .. +7, columns n0 + 8 tx .. +7.
@compute @workgroup_size(8, 8)
fn gemm(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(local_invocation_id) lid: vec3<u32>,
  @builtin(local_invocation_index) tid: u32,
) {
  let n0 = wid.x * TILE;
  let m0 = wid.y * TILE;
  // acc[2 i + h][j] = y[m0 + 8 ty + i, n0 + 8 tx + 4 h + j]
  var acc: array<vec4<f32>, 16>;
  for (var k0 = 0u; k0 < params.k4; k0 += TILE_K4) {
    gemm_load_tiles(m0, n0, k0, tid);
    workgroupBarrier();
    for (var k = 0u; k < TILE_K4 * 4u; k++) {
      let a0 = xs[k * TILE_V + 2u * lid.y];
      let a1 = xs[k * TILE_V + 2u * lid.y + 1u];
      let b0 = ws[k * TILE_V + 2u * lid.x];
      let b1 = ws[k * TILE_V + 2u * lid.x + 1u];
      acc[0] += a0.x * b0; acc[1] += a0.x * b1;
      acc[2] += a0.y * b0; acc[3] += a0.y * b1;
      acc[4] += a0.z * b0; acc[5] += a0.z * b1;
      acc[6] += a0.w * b0; acc[7] += a0.w * b1;
      acc[8] += a1.x * b0; acc[9] += a1.x * b1;
      acc[10] += a1.y * b0; acc[11] += a1.y * b1;
      acc[12] += a1.z * b0; acc[13] += a1.z * b1;
      acc[14] += a1.w * b0; acc[15] += a1.w * b1;
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < 8u; i++) {
    let m = m0 + 8u * lid.y + i;
    for (var j = 0u; j < 8u; j++) {
      let n = n0 + 8u * lid.x + j;
      if (m < params.m && n < params.n) {
        store_y(m, n, acc[2u * i + j / 4u][j % 4u]);
      }
    }
  }
}
