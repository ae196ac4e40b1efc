// Matmul against a GGUF weight dequantized in the kernel: y[m, n] (+)= sum_k x[m, k] * W[n, k].
// Bindings: 0 uniform Params, 1 W: array<u32> (N rows of K elements of type {{WTYPE}} in the
// dequant.wgsl GPU layout), 2 X: array<vec4<f32>> row-major [M, K / 4], 3 Y: array<f32> [M, N].
// Defines: WTYPE (weight type), ROWS (gemv: x rows per row tile; 1 for gemm),
// SPLIT (gemv: threads per weight-row pair, 1..64; 1 for gemm). K must be a multiple of 4.
//
// gemv (the fast set's only float path, any M; the llama.cpp set's decode path): a group of SPLIT
//   threads owns GEMV_COLS weight rows; each thread dequantizes a strided set of vec4s of them ONCE
//   and applies each to all ROWS x rows of its row tile (acc += dot(x4, w4), in K order), then the
//   group sums its threads' partials in a fixed tree (gemv_reduce.wgsl). Small K takes a small
//   SPLIT (down to 1: no reduction), large K 64. Grid: (x, y) weight row groups folded as
//   y * nwg.x + x, z row tiles. An output's order depends on K and SPLIT only: batch invariant.
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

/** This thread's share (every SPLIT-th vec4 of K) of the sums of GEMV_COLS weight rows from n0. */
fn gemv_accumulate(n0: u32, m0: u32, lane: u32) -> GemvSums {
  var rowWord: array<u32, GEMV_COLS>;
  for (var c = 0u; c < GEMV_COLS; c++) {
    rowWord[c] = min(n0 + c, params.n - 1u) * params.wordsPerRow;
  }
  var acc: GemvSums;
  for (var c4 = lane; c4 < params.k4; c4 += SPLIT) {
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
  return acc;
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
