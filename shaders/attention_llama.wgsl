// The llama.cpp kernel set's paged attention (numerics 'llama.cpp'; attention.wgsl is the fast set's): prefill chunks and decode tokens of many sequences.
//
// KV cache (written by kv.wgsl): per layer one K and one V buffer of u32 words; element
// (page, kvHead, slot, dim) is at ((page * numKvHeads + kvHead) * pageSize + slot) * HEAD_DIM + dim,
// so one page of one kv head is a contiguous [pageSize, HEAD_DIM] block. Format f32: one f32 bit
// pattern per word; f16 (KV_F16): two halves per word, dims 2i (low) and 2i+1 (high).
// Key position j of sequence s is in page blockTables[s * maxBlocksPerSeq + j / pageSize], slot j % pageSize.
//
// A workgroup handles ROWS = TOKENS * GROUP query rows: TOKENS consecutive tokens of one sequence
// times the GROUP query heads sharing one kv head (GQA: K/V tiles are staged once for the group).
// Row r is token r / GROUP, query head kvHead * GROUP + r % GROUP. Keys are walked in tiles of BK
// staged in workgroup memory; each row keeps an online softmax (running max, sum, accumulator),
// its HEAD_DIM accumulators spread over TPR threads (dims lane, lane + TPR, ...).
//
// Entry points, all with Params at binding 0:
//   attn_tiled   1 q f32 [T, numHeads*HEAD_DIM], 2 kCache, 3 vCache, 4 positions i32 [T],
//                5 seqStarts i32 [numSeqs+1], 6 blockTables i32, 7 out f32 [T, numHeads*HEAD_DIM].
//                Grid (tiles, numKvHeads). Tiles number the sequences' tokens in order (found by
//                walking seqStarts; single-token sequences are skipped when skipSingles != 0);
//                keys 0..max position of the tile, causal mask per row. Surplus workgroups exit.
//   attn_split   bindings 1..7 as attn_tiled, 8 partAcc f32, 9 partMl vec2<f32> (max, sum).
//                Grid (numSplits, numKvHeads, numSeqs); TOKENS must be 1. Only sequences with one
//                new token: split i covers keys [i * splitLen, (i + 1) * splitLen) of 0..position (the
//                last split runs to the end). Partials go to index (seq * numHeads + head) * numSplits
//                + split; with numSplits == 1 the output is written directly.
//   attn_reduce  1 seqStarts, 2 out, 3 partAcc, 4 partMl. Grid (numHeads, numSeqs): merges the splits.

const HEAD_DIM: u32 = {{HEAD_DIM}}u;
const GROUP: u32 = {{GROUP}}u;
const TOKENS: u32 = {{TOKENS}}u;
const TPR: u32 = {{TPR}}u;
const BK: u32 = {{BK}}u;
const KV_F16: bool = {{KV_F16}};
// F16_ACC: llama.cpp's CPU flash attention for one query row with an f16 KV cache
// (ggml_compute_forward_flash_attn_ext_f16_one_chunk, x86 AVX2 build), bit for bit: the query
// rounded to f16, score = ggml_vec_dot_f16 order (score_f16) times scale, keys visited one by one,
// ms = expf(Mold - M) / vs = expf(s - M) correctly rounded, the value accumulator VKQ16 kept in
// f16: VKQ = f16(VKQ * ms) when the max rises, VKQ = f16(fmaf(v, vs, VKQ)), S = S * ms + vs,
// and out = VKQ * (1 / S). Needs KV_F16.
// Sequences with TILED_MIN_QUERIES or more new tokens instead take llama.cpp's tiled prompt path
// (ggml_compute_forward_flash_attn_ext_tiled, used for ubatches of 64+ tokens when HEAD_DIM is a
// multiple of 8): f32 query, keys in tiles of 64 (LLAMA_KV_TILE) from key 0, per tile
// s = fmaf chain over dims times scale, M/S/VKQ rescaled by expf(Mold - Mnew) when the tile's max
// rises, p = ggml_v_expf(s - M) summed 8 at a time in f32 and across chunks in double
// (float-float here), VKQ (f32) = fmaf chain of p * v over the tile's keys; out = VKQ * (1 / S).
const F16_ACC: bool = {{F16_ACC}};
const TILED_MIN_QUERIES: u32 = 64u;
const LLAMA_KV_TILE: u32 = 64u;
// Scores kept per row: one staged tile, or a whole LLAMA_KV_TILE for the tiled prompt path.
const SCORE_KEYS: u32 = {{SCORE_KEYS}}u;
const ROWS: u32 = GROUP * TOKENS;
const WG: u32 = ROWS * TPR;
const DPT: u32 = HEAD_DIM / TPR;
const HALF_DIM: u32 = HEAD_DIM / 2u;
// Score of a masked key. Finite, so exp(MASKED - max) is 0 without inf - inf.
const MASKED: f32 = -3.0e38;
// Running max before any key; above MASKED so fully masked tiles add exp(MASKED - M_INIT) = 0.
const M_INIT: f32 = -1.0e30;

struct Params {
  numTokens: u32,
  numSeqs: u32,
  numKvHeads: u32,
  pageSize: u32,
  maxBlocksPerSeq: u32,
  scale: f32,
  skipSingles: u32,
  numSplits: u32,
  splitLen: u32,
  numHeads: u32,
  _p0: u32,
  _p1: u32,
}

#include "exact"

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> kCache: array<u32>;
@group(0) @binding(3) var<storage, read> vCache: array<u32>;
@group(0) @binding(4) var<storage, read> positions: array<i32>;
@group(0) @binding(5) var<storage, read> seqStarts: array<i32>;
@group(0) @binding(6) var<storage, read> blockTables: array<i32>;
@group(0) @binding(7) var<storage, read_write> out: array<f32>;
@group(0) @binding(8) var<storage, read_write> partAcc: array<f32>;
@group(0) @binding(9) var<storage, read_write> partMl: array<vec2<f32>>;

// attn_reduce's view of the bindings.
@group(0) @binding(1) var<storage, read> redSeqStarts: array<i32>;
@group(0) @binding(2) var<storage, read_write> redOut: array<f32>;
@group(0) @binding(3) var<storage, read> redAcc: array<f32>;
@group(0) @binding(4) var<storage, read> redMl: array<vec2<f32>>;

// What one workgroup does; written by thread 0, read back uniformly.
struct Job {
  live: u32,
  seq: u32,
  firstToken: u32,
  numTokens: u32,
  keyStart: u32,
  keyEnd: u32,
  // llama.cpp's tiled prompt path (F16_ACC only): the sequence has TILED_MIN_QUERIES+ new tokens.
  llamaTiled: u32,
}

var<workgroup> job: Job;
var<workgroup> qTile: array<f32, ROWS * HEAD_DIM>;
var<workgroup> kTile: array<f32, BK * HEAD_DIM>;
var<workgroup> vTile: array<f32, BK * HEAD_DIM>;
var<workgroup> scores: array<f32, ROWS * SCORE_KEYS>;
var<workgroup> rowPos: array<i32, ROWS>;

var<private> acc: array<f32, DPT>;
var<private> rowMax: f32;
var<private> rowSum: f32;

fn k_pair(elem: u32) -> vec2<f32> {
  if (KV_F16) { return unpack2x16float(kCache[elem >> 1u]); }
  return vec2<f32>(bitcast<f32>(kCache[elem]), bitcast<f32>(kCache[elem + 1u]));
}

fn v_pair(elem: u32) -> vec2<f32> {
  if (KV_F16) { return unpack2x16float(vCache[elem >> 1u]); }
  return vec2<f32>(bitcast<f32>(vCache[elem]), bitcast<f32>(vCache[elem + 1u]));
}

// Element index of (key position, dim) of kv head `kvHead` in sequence `seq`'s pages.
fn kv_elem(seq: u32, kvHead: u32, key: u32, dim: u32) -> u32 {
  let page = u32(blockTables[seq * params.maxBlocksPerSeq + key / params.pageSize]);
  let slot = key % params.pageSize;
  return ((page * params.numKvHeads + kvHead) * params.pageSize + slot) * HEAD_DIM + dim;
}

// Stages the job's query rows (pre-scaled) and their positions (-1 for padding rows).
fn load_queries(j: Job, kvHead: u32, tid: u32) {
  let llamaTiled = j.llamaTiled != 0u;
  for (var e = tid; e < ROWS * HEAD_DIM; e += WG) {
    let r = e / HEAD_DIM;
    let tok = r / GROUP;
    var value = 0.0;
    if (tok < j.numTokens) {
      let head = kvHead * GROUP + r % GROUP;
      value = q[((j.firstToken + tok) * params.numHeads + head) * HEAD_DIM + e % HEAD_DIM];
      if (!llamaTiled) { value = select(value * params.scale, f16_grid(value), F16_ACC); }
    }
    qTile[e] = value;
  }
  for (var r = tid; r < ROWS; r += WG) {
    let tok = r / GROUP;
    var pos = -1;
    if (tok < j.numTokens) { pos = positions[j.firstToken + tok]; }
    rowPos[r] = pos;
  }
}

fn load_kv_tile(j: Job, kvHead: u32, tileStart: u32, tid: u32) {
  for (var e = tid; e < BK * HALF_DIM; e += WG) {
    let key = tileStart + e / HALF_DIM;
    let dim = (e % HALF_DIM) * 2u;
    var kv = vec4<f32>(0.0);
    if (key < j.keyEnd) {
      let elem = kv_elem(j.seq, kvHead, key, dim);
      kv = vec4<f32>(k_pair(elem), v_pair(elem));
    }
    let t = (e / HALF_DIM) * HEAD_DIM + dim;
    kTile[t] = kv.x;
    kTile[t + 1u] = kv.y;
    vTile[t] = kv.z;
    vTile[t + 1u] = kv.w;
  }
}

fn compute_scores(j: Job, tileStart: u32, tid: u32) {
  for (var e = tid; e < ROWS * BK; e += WG) {
    let r = e / BK;
    let key = tileStart + e % BK;
    let at = r * SCORE_KEYS + e % BK;
    var s = MASKED;
    if (key < j.keyEnd && i32(key) <= rowPos[r]) {
      let qBase = r * HEAD_DIM;
      let kBase = (e % BK) * HEAD_DIM;
      if (F16_ACC) {
        s = score_f16(qBase, kBase);
      } else {
        s = 0.0;
        for (var d = 0u; d < HEAD_DIM; d++) { s += qTile[qBase + d] * kTile[kBase + d]; }
      }
    }
    scores[at] = s;
  }
}

// ggml_vec_dot_f16 (AVX2) of the staged f16 query row and key, times scale. Products of two f16
// values are exact in f32. 32-element chunks go to 4 accumulators of 8 lanes (element c + 8 j + l
// to accumulator j, lane l), reduced as ((a0 + a2) + (a1 + a3)), then lanes as
// ((t0 + t1) + (t2 + t3)) with t_i = lane i + lane 4 + i; dims past the last whole chunk are added
// after (in double there; float-float here).
fn score_f16(qBase: u32, kBase: u32) -> f32 {
  var lanes: array<f32, 32>;
  for (var i = 0u; i < 32u; i++) { lanes[i] = 0.0; }
  let whole = HEAD_DIM / 32u * 32u;
  for (var c = 0u; c < whole; c += 32u) {
    for (var i = 0u; i < 32u; i++) { lanes[i] += qTile[qBase + c + i] * kTile[kBase + c + i]; }
  }
  var v: array<f32, 8>;
  for (var l = 0u; l < 8u; l++) { v[l] = (lanes[l] + lanes[16u + l]) + (lanes[8u + l] + lanes[24u + l]); }
  let t = vec4<f32>(v[0] + v[4], v[1] + v[5], v[2] + v[6], v[3] + v[7]);
  var s = vec2<f32>((t.x + t.y) + (t.z + t.w), 0.0);
  for (var d = whole; d < HEAD_DIM; d++) { s = ff_add(s, vec2<f32>(qTile[qBase + d] * kTile[kBase + d], 0.0)); }
  return s.x * params.scale;
}

fn fma1(a: f32, b: f32, c: f32) -> f32 {
  return fma4(vec4<f32>(a), vec4<f32>(b), vec4<f32>(c)).x;
}

// llama.cpp's per-key online softmax with f16 accumulators (F16_ACC).
fn accumulate_f16(row: u32, lane: u32) {
  for (var k = 0u; k < BK; k++) {
    let s = scores[row * SCORE_KEYS + k];
    if (s == MASKED) { continue; }
    var ms = 1.0;
    var vs = 1.0;
    if (s > rowMax) {
      ms = exp_rn(rowMax - s);
      rowMax = s;
      for (var i = 0u; i < DPT; i++) { acc[i] = f16_grid(acc[i] * ms); }
    } else {
      vs = exp_rn(s - rowMax);
    }
    for (var i = 0u; i < DPT; i++) { acc[i] = f16_grid(fma1(vTile[k * HEAD_DIM + lane + i * TPR], vs, acc[i])); }
    rowSum = rowSum * ms + vs;  // not fused in llama.cpp's x86 build
  }
}

// Online softmax step of this thread's row over the staged tile.
fn accumulate(row: u32, lane: u32) {
  if (F16_ACC) {
    accumulate_f16(row, lane);
    return;
  }
  var tileMax = MASKED;
  for (var k = 0u; k < BK; k++) { tileMax = max(tileMax, scores[row * SCORE_KEYS + k]); }
  let newMax = max(rowMax, tileMax);
  let alpha = exp(rowMax - newMax);
  rowSum *= alpha;
  for (var i = 0u; i < DPT; i++) { acc[i] *= alpha; }
  for (var k = 0u; k < BK; k++) {
    let p = exp(scores[row * SCORE_KEYS + k] - newMax);
    rowSum += p;
    for (var i = 0u; i < DPT; i++) { acc[i] += p * vTile[k * HEAD_DIM + lane + i * TPR]; }
  }
  rowMax = newMax;
}

// Runs the job's rows over keys [keyStart, keyEnd); `j` must be workgroup-uniform.
fn attend(j: Job, kvHead: u32, tid: u32) {
  rowMax = M_INIT;
  rowSum = 0.0;
  for (var i = 0u; i < DPT; i++) { acc[i] = 0.0; }
  load_queries(j, kvHead, tid);
  if (F16_ACC && j.llamaTiled != 0u) {
    attend_llama_tiled(j, kvHead, tid);
    return;
  }
  for (var tileStart = j.keyStart; tileStart < j.keyEnd; tileStart += BK) {
    load_kv_tile(j, kvHead, tileStart, tid);
    workgroupBarrier();
    compute_scores(j, tileStart, tid);
    workgroupBarrier();
    accumulate(tid / TPR, tid % TPR);
    workgroupBarrier();
  }
}

// Scores of keys [tileStart, tileStart + BK) into columns col0.. of the rows' LLAMA_KV_TILE
// scores: fmaf chain over the dims, times scale (simd_gemm, then ggml_vec_scale_f32).
fn llama_tiled_scores(j: Job, tileStart: u32, col0: u32, tid: u32) {
  for (var e = tid; e < ROWS * BK; e += WG) {
    let r = e / BK;
    let key = tileStart + e % BK;
    var s = MASKED;
    if (key < j.keyEnd && i32(key) <= rowPos[r]) {
      let qBase = r * HEAD_DIM;
      let kBase = (e % BK) * HEAD_DIM;
      s = 0.0;
      for (var d = 0u; d < HEAD_DIM; d++) { s = fma1(qTile[qBase + d], kTile[kBase + d], s); }
      s *= params.scale;
    }
    scores[r * SCORE_KEYS + col0 + e % BK] = s;
  }
}

// One row's softmax step over a LLAMA_KV_TILE of its scores (read only): rescales this thread's
// accumulators and the row's max and sum, and returns the probabilities.
fn llama_tiled_softmax(row: u32) -> array<f32, LLAMA_KV_TILE> {
  let base = row * SCORE_KEYS;
  var probs: array<f32, LLAMA_KV_TILE>;
  var tileMax = MASKED;
  for (var k = 0u; k < LLAMA_KV_TILE; k++) { tileMax = max(tileMax, scores[base + k]); }
  if (tileMax == MASKED) { return probs; }  // fully masked: zeros, nothing rescaled
  let newMax = max(rowMax, tileMax);
  if (newMax > rowMax) {
    let ms = exp_rn(rowMax - newMax);
    for (var i = 0u; i < DPT; i++) { acc[i] *= ms; }
    rowSum *= ms;
  }
  rowMax = newMax;
  var sum = vec2<f32>(0.0);
  for (var k = 0u; k < LLAMA_KV_TILE; k += 8u) {
    let lo = vec4<f32>(scores[base + k], scores[base + k + 1u], scores[base + k + 2u], scores[base + k + 3u]);
    let hi = vec4<f32>(scores[base + k + 4u], scores[base + k + 5u], scores[base + k + 6u], scores[base + k + 7u]);
    // Masked keys (MASKED, -inf there) give 0 in ggml_v_expf's overflow branch either way.
    let plo = ggml_expf4(max(lo - vec4<f32>(newMax), vec4<f32>(-1e30)));
    let phi = ggml_expf4(max(hi - vec4<f32>(newMax), vec4<f32>(-1e30)));
    for (var i = 0u; i < 4u; i++) {
      probs[k + i] = plo[i];
      probs[k + 4u + i] = phi[i];
    }
    let a = phi + plo;  // lanes (v4 + v0, v5 + v1, v6 + v2, v7 + v3), then ((a0 + a2) + (a1 + a3))
    sum = ff_add(sum, vec2<f32>((a.x + a.z) + (a.y + a.w), 0.0));
  }
  rowSum = ff_add(vec2<f32>(rowSum, 0.0), sum).x;
  return probs;
}

// llama.cpp's tiled prompt attention (see F16_ACC above) for the job's rows.
fn attend_llama_tiled(j: Job, kvHead: u32, tid: u32) {
  let row = tid / TPR;
  let lane = tid % TPR;
  for (var tile = 0u; tile < j.keyEnd; tile += LLAMA_KV_TILE) {
    for (var h = 0u; h < LLAMA_KV_TILE; h += BK) {
      load_kv_tile(j, kvHead, tile + h, tid);
      workgroupBarrier();
      llama_tiled_scores(j, tile + h, h, tid);
      workgroupBarrier();
    }
    // Every thread of a row steps the row's softmax state; lane 0 writes the probabilities.
    let base = row * SCORE_KEYS;
    let probs = llama_tiled_softmax(row);
    workgroupBarrier();
    if (lane == 0u) {
      for (var k = 0u; k < LLAMA_KV_TILE; k++) { scores[base + k] = probs[k]; }
    }
    workgroupBarrier();
    for (var h = 0u; h < LLAMA_KV_TILE; h += BK) {
      load_kv_tile(j, kvHead, tile + h, tid);
      workgroupBarrier();
      for (var k = 0u; k < BK; k++) {
        let p = scores[base + h + k];
        for (var i = 0u; i < DPT; i++) { acc[i] = fma1(p, vTile[k * HEAD_DIM + lane + i * TPR], acc[i]); }
      }
      workgroupBarrier();
    }
  }
}

// Output element of this thread's row for accumulator i (token and head from the row).
fn out_index(j: Job, kvHead: u32, row: u32, lane: u32, i: u32) -> u32 {
  let head = kvHead * GROUP + row % GROUP;
  return ((j.firstToken + row / GROUP) * params.numHeads + head) * HEAD_DIM + lane + i * TPR;
}

fn write_output(j: Job, kvHead: u32, tid: u32) {
  let row = tid / TPR;
  if (row / GROUP >= j.numTokens) { return; }
  if (F16_ACC) {
    let inv = select(div_rn(1.0, rowSum), 0.0, rowSum == 0.0);
    for (var i = 0u; i < DPT; i++) { out[out_index(j, kvHead, row, tid % TPR, i)] = acc[i] * inv; }
    return;
  }
  for (var i = 0u; i < DPT; i++) { out[out_index(j, kvHead, row, tid % TPR, i)] = acc[i] / rowSum; }
}

fn find_tile(tile: u32) -> Job {
  var rest = tile;
  for (var s = 0u; s < params.numSeqs; s++) {
    let start = u32(seqStarts[s]);
    let len = u32(seqStarts[s + 1u]) - start;
    if (params.skipSingles != 0u && len == 1u) { continue; }
    let tiles = (len + TOKENS - 1u) / TOKENS;
    if (rest < tiles) {
      let first = start + rest * TOKENS;
      let count = min(TOKENS, len - rest * TOKENS);
      var maxPos = 0;
      for (var t = 0u; t < count; t++) { maxPos = max(maxPos, positions[first + t]); }
      let llamaTiled = F16_ACC && len >= TILED_MIN_QUERIES && HEAD_DIM % 8u == 0u;
      return Job(1u, s, first, count, 0u, u32(maxPos) + 1u, u32(llamaTiled));
    }
    rest -= tiles;
  }
  return Job(0u, 0u, 0u, 0u, 0u, 0u, 0u);
}

@compute @workgroup_size(WG)
fn attn_tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  if (tid == 0u) { job = find_tile(wid.x); }
  let j = workgroupUniformLoad(&job);
  if (j.live == 0u) { return; }
  attend(j, wid.y, tid);
  write_output(j, wid.y, tid);
}

fn find_split(seq: u32, split: u32) -> Job {
  let start = u32(seqStarts[seq]);
  if (u32(seqStarts[seq + 1u]) - start != 1u) { return Job(0u, 0u, 0u, 0u, 0u, 0u, 0u); }
  let contextEnd = u32(positions[start]) + 1u;
  let keyStart = min(split * params.splitLen, contextEnd);
  var keyEnd = min(keyStart + params.splitLen, contextEnd);
  if (split + 1u == params.numSplits) { keyEnd = contextEnd; }
  return Job(1u, seq, start, 1u, keyStart, keyEnd, 0u);
}

@compute @workgroup_size(WG)
fn attn_split(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  if (tid == 0u) { job = find_split(wid.z, wid.x); }
  let j = workgroupUniformLoad(&job);
  if (j.live == 0u) { return; }
  attend(j, wid.y, tid);
  if (params.numSplits == 1u) {
    write_output(j, wid.y, tid);
    return;
  }
  let row = tid / TPR;
  let lane = tid % TPR;
  let part = (j.seq * params.numHeads + wid.y * GROUP + row) * params.numSplits + wid.x;
  for (var i = 0u; i < DPT; i++) { partAcc[part * HEAD_DIM + lane + i * TPR] = acc[i]; }
  if (lane == 0u) { partMl[part] = vec2<f32>(rowMax, rowSum); }
}

@compute @workgroup_size(64)
fn attn_reduce(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let head = wid.x;
  let seq = wid.y;
  let token = u32(redSeqStarts[seq]);
  if (u32(redSeqStarts[seq + 1u]) - token != 1u) { return; }
  let base = (seq * params.numHeads + head) * params.numSplits;
  var maxAll = M_INIT;
  for (var i = 0u; i < params.numSplits; i++) { maxAll = max(maxAll, redMl[base + i].x); }
  var sum = 0.0;
  for (var i = 0u; i < params.numSplits; i++) { sum += redMl[base + i].y * exp(redMl[base + i].x - maxAll); }
  for (var d = tid; d < HEAD_DIM; d += 64u) {
    var value = 0.0;
    for (var i = 0u; i < params.numSplits; i++) {
      value += redAcc[(base + i) * HEAD_DIM + d] * exp(redMl[base + i].x - maxAll);
    }
    redOut[(token * params.numHeads + head) * HEAD_DIM + d] = value / sum;
  }
}
