// Paged attention over a ragged batch, the fast kernel set's (attention_llama.wgsl is the
// llama.cpp set's): prefill chunks and decode tokens of many sequences.
//
// KV cache (written by kv.wgsl): per layer one K and one V buffer of u32 words; element
// (page, kvHead, slot, dim) is at ((page * numKvHeads + kvHead) * pageSize + slot) * HEAD_DIM + dim,
// so one page of one kv head is a contiguous [pageSize, HEAD_DIM] block. Format f32: one f32 bit
// pattern per word; f16 (KV_F16): two halves per word, dims 2i (low) and 2i+1 (high); q8_0 / q4_0
// (KV_QUANT = 8 / 4): blocks of 32 values dequantized as they are staged (kv_q_page.wgsl).
// Key position j of sequence s is in page blockTables[s * maxBlocksPerSeq + j / pageSize], slot j % pageSize.
//
// One order for every query row, whatever path computes it (batch invariance): the keys
// 0..position are cut into chunks of params.chunkLen keys (chunk c = keys [c * chunkLen,
// (c + 1) * chunkLen), a constant of the engine, never of the batch), and each chunk into tiles of
// BK keys from its start. Within a chunk the row keeps an online softmax from scratch: per tile
// with at least one visible key, the tile's max, the rescale exp(old max - new max), then
// p = exp(s - max) key by key into the sum and the value accumulators. Chunk results (max, sum,
// accumulators) are then merged in chunk order (merge_chunk), and out = acc / sum. attn_tiled does
// all of it in one workgroup; attn_split computes one chunk per workgroup and attn_reduce merges
// them, with the same functions, so a token's output is bit-identical on either path.
//
// A workgroup handles ROWS = TOKENS * GROUP query rows: TOKENS consecutive tokens of one sequence
// times the GROUP query heads sharing one kv head (GQA: K/V tiles are staged once for the group).
// Row r is token r / GROUP, query head kvHead * GROUP + r % GROUP; its HEAD_DIM accumulators are
// spread over TPR threads (dims lane, lane + TPR, ...).
//
// Entry points, all with Params at binding 0:
//   attn_tiled   1 q f32 [T, numHeads*HEAD_DIM], 2 kCache, 3 vCache, 4 positions i32 [T],
//                5 seqStarts i32 [numSeqs+1], 6 blockTables i32, 7 out f32 [T, numHeads*HEAD_DIM].
//                Grid (tiles, numKvHeads). Tiles number the sequences' tokens in order (found by
//                walking seqStarts; single-token sequences are skipped when skipSingles != 0).
//                Surplus workgroups exit.
//   attn_split   bindings 1..7 as attn_tiled, 8 partAcc f32, 9 partMl vec2<f32> (max, sum).
//                Grid (numSplits, numKvHeads, numSeqs); TOKENS must be 1. Only sequences with one
//                new token: workgroup x computes chunk x (empty past the sequence's keys). Partials
//                go to index (seq * numHeads + head) * numSplits + chunk; with numSplits == 1 the
//                output is written directly.
//   attn_reduce  1 seqStarts, 2 out, 3 partAcc, 4 partMl, 5 positions. Grid (numHeads, numSeqs):
//                merges a sequence's chunks in order.

const HEAD_DIM: u32 = {{HEAD_DIM}}u;
const GROUP: u32 = {{GROUP}}u;
const TOKENS: u32 = {{TOKENS}}u;
const TPR: u32 = {{TPR}}u;
const BK: u32 = {{BK}}u;
const KV_F16: bool = {{KV_F16}};
const KV_QUANT: u32 = {{KV_QUANT}}u;
const ROWS: u32 = GROUP * TOKENS;
const WG: u32 = ROWS * TPR;
const DPT: u32 = HEAD_DIM / TPR;
const HALF_DIM: u32 = HEAD_DIM / 2u;
// Score of a masked key. Finite, so exp(MASKED - max) is 0 without inf - inf.
const MASKED: f32 = -3.0e38;
// Running max before any key; above MASKED so masked keys add exp(MASKED - max) = 0.
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
  chunkLen: u32,
  numHeads: u32,
  _p0: u32,
  _p1: u32,
}

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
@group(0) @binding(5) var<storage, read> redPositions: array<i32>;

// What one workgroup does; written by thread 0, read back uniformly.
struct Job {
  live: u32,
  seq: u32,
  firstToken: u32,
  numTokens: u32,
  keyStart: u32,
  keyEnd: u32,
}

var<workgroup> job: Job;
var<workgroup> qTile: array<f32, ROWS * HEAD_DIM>;
var<workgroup> kTile: array<f32, BK * HEAD_DIM>;
var<workgroup> vTile: array<f32, BK * HEAD_DIM>;
var<workgroup> scores: array<f32, ROWS * BK>;
var<workgroup> rowPos: array<i32, ROWS>;

// This thread's row: the running chunk (max, sum, accumulators of its dims)...
var<private> acc: array<f32, DPT>;
var<private> rowMax: f32;
var<private> rowSum: f32;
// ...and the chunks before it, merged (attn_tiled).
var<private> mergedAcc: array<f32, DPT>;
var<private> mergedMax: f32;
var<private> mergedSum: f32;

#include "kv_q_page"

fn page_values() -> u32 {
  return params.numKvHeads * params.pageSize * HEAD_DIM;
}

fn k_pair(elem: u32) -> vec2<f32> {
  if (KV_QUANT != 0u) {
    let a = kvq_addr(elem, page_values());
    return kvq_pair(a, elem, kCache[a.quantWord], kCache[a.scaleWord]);
  }
  if (KV_F16) { return unpack2x16float(kCache[elem >> 1u]); }
  return vec2<f32>(bitcast<f32>(kCache[elem]), bitcast<f32>(kCache[elem + 1u]));
}

fn v_pair(elem: u32) -> vec2<f32> {
  if (KV_QUANT != 0u) {
    let a = kvq_addr(elem, page_values());
    return kvq_pair(a, elem, vCache[a.quantWord], vCache[a.scaleWord]);
  }
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
  for (var e = tid; e < ROWS * HEAD_DIM; e += WG) {
    let r = e / HEAD_DIM;
    let tok = r / GROUP;
    var value = 0.0;
    if (tok < j.numTokens) {
      let head = kvHead * GROUP + r % GROUP;
      value = q[((j.firstToken + tok) * params.numHeads + head) * HEAD_DIM + e % HEAD_DIM] * params.scale;
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

// Scores of the tile's keys for every row: q·k summed over the dims in order; MASKED past the
// row's position or the job's keys.
fn compute_scores(j: Job, tileStart: u32, tid: u32) {
  for (var e = tid; e < ROWS * BK; e += WG) {
    let r = e / BK;
    let key = tileStart + e % BK;
    var s = MASKED;
    if (key < j.keyEnd && i32(key) <= rowPos[r]) {
      let qBase = r * HEAD_DIM;
      let kBase = (e % BK) * HEAD_DIM;
      s = 0.0;
      for (var d = 0u; d < HEAD_DIM; d++) { s += qTile[qBase + d] * kTile[kBase + d]; }
    }
    scores[e] = s;
  }
}

fn reset_chunk() {
  rowMax = M_INIT;
  rowSum = 0.0;
  for (var i = 0u; i < DPT; i++) { acc[i] = 0.0; }
}

// Online softmax step of this thread's row over the staged tile. A tile with no visible key for
// the row is skipped outright, so rows that see fewer tiles (decode) compute the same bits.
fn accumulate(row: u32, lane: u32) {
  var tileMax = MASKED;
  for (var k = 0u; k < BK; k++) { tileMax = max(tileMax, scores[row * BK + k]); }
  if (tileMax == MASKED) { return; }
  let newMax = max(rowMax, tileMax);
  let alpha = exp(rowMax - newMax);
  rowSum *= alpha;
  for (var i = 0u; i < DPT; i++) { acc[i] *= alpha; }
  for (var k = 0u; k < BK; k++) {
    let p = exp(scores[row * BK + k] - newMax);
    rowSum += p;
    for (var i = 0u; i < DPT; i++) { acc[i] += p * vTile[k * HEAD_DIM + lane + i * TPR]; }
  }
  rowMax = newMax;
}

// Runs the job's rows over the keys [start, end) of one chunk, from a fresh softmax state;
// `j`, start and end must be workgroup-uniform.
fn attend_chunk(j: Job, kvHead: u32, tid: u32, start: u32, end: u32) {
  reset_chunk();
  for (var tileStart = start; tileStart < end; tileStart += BK) {
    load_kv_tile(j, kvHead, tileStart, tid);
    workgroupBarrier();
    compute_scores(j, tileStart, tid);
    workgroupBarrier();
    accumulate(tid / TPR, tid % TPR);
    workgroupBarrier();
  }
}

// Scales to merge a chunk of max m2 into a merged state of max m1: (new max, factor 1, factor 2).
fn merge_scales(m1: f32, m2: f32) -> vec3<f32> {
  let m = max(m1, m2);
  return vec3<f32>(m, exp(m1 - m), exp(m2 - m));
}

// Folds the running chunk into the merged state (the first chunk is taken as it is).
fn merge_chunk(first: bool) {
  if (first) {
    mergedMax = rowMax;
    mergedSum = rowSum;
    for (var i = 0u; i < DPT; i++) { mergedAcc[i] = acc[i]; }
    return;
  }
  let f = merge_scales(mergedMax, rowMax);
  mergedMax = f.x;
  mergedSum = mergedSum * f.y + rowSum * f.z;
  for (var i = 0u; i < DPT; i++) { mergedAcc[i] = mergedAcc[i] * f.y + acc[i] * f.z; }
}

// Output element of this thread's row for accumulator i (token and head from the row).
fn out_index(j: Job, kvHead: u32, row: u32, lane: u32, i: u32) -> u32 {
  let head = kvHead * GROUP + row % GROUP;
  return ((j.firstToken + row / GROUP) * params.numHeads + head) * HEAD_DIM + lane + i * TPR;
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
      return Job(1u, s, first, count, 0u, u32(maxPos) + 1u);
    }
    rest -= tiles;
  }
  return Job(0u, 0u, 0u, 0u, 0u, 0u);
}

@compute @workgroup_size(WG)
fn attn_tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  if (tid == 0u) { job = find_tile(wid.x); }
  let j = workgroupUniformLoad(&job);
  if (j.live == 0u) { return; }
  let kvHead = wid.y;
  let row = tid / TPR;
  load_queries(j, kvHead, tid);
  for (var start = 0u; start < j.keyEnd; start += params.chunkLen) {
    attend_chunk(j, kvHead, tid, start, min(start + params.chunkLen, j.keyEnd));
    // Chunks that start past the row's position hold none of its keys: as in attn_split, where
    // the sequence has no such chunk.
    if (i32(start) <= rowPos[row]) { merge_chunk(start == 0u); }
  }
  if (row / GROUP >= j.numTokens) { return; }
  for (var i = 0u; i < DPT; i++) { out[out_index(j, kvHead, row, tid % TPR, i)] = mergedAcc[i] / mergedSum; }
}

fn find_split(seq: u32, chunk: u32) -> Job {
  let start = u32(seqStarts[seq]);
  if (u32(seqStarts[seq + 1u]) - start != 1u) { return Job(0u, 0u, 0u, 0u, 0u, 0u); }
  let contextEnd = u32(positions[start]) + 1u;
  let keyStart = chunk * params.chunkLen;
  if (keyStart >= contextEnd) { return Job(0u, 0u, 0u, 0u, 0u, 0u); }
  return Job(1u, seq, start, 1u, keyStart, min(keyStart + params.chunkLen, contextEnd));
}

@compute @workgroup_size(WG)
fn attn_split(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  if (tid == 0u) { job = find_split(wid.z, wid.x); }
  let j = workgroupUniformLoad(&job);
  if (j.live == 0u) { return; }
  let kvHead = wid.y;
  load_queries(j, kvHead, tid);
  attend_chunk(j, kvHead, tid, j.keyStart, j.keyEnd);
  let row = tid / TPR;
  let lane = tid % TPR;
  if (params.numSplits == 1u) {
    for (var i = 0u; i < DPT; i++) { out[out_index(j, kvHead, row, lane, i)] = acc[i] / rowSum; }
    return;
  }
  let part = (j.seq * params.numHeads + kvHead * GROUP + row) * params.numSplits + wid.x;
  for (var i = 0u; i < DPT; i++) { partAcc[part * HEAD_DIM + lane + i * TPR] = acc[i]; }
  if (lane == 0u) { partMl[part] = vec2<f32>(rowMax, rowSum); }
}

@compute @workgroup_size(64)
fn attn_reduce(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
  let head = wid.x;
  let seq = wid.y;
  let token = u32(redSeqStarts[seq]);
  if (u32(redSeqStarts[seq + 1u]) - token != 1u) { return; }
  let chunks = (u32(redPositions[token]) + params.chunkLen) / params.chunkLen;
  let base = (seq * params.numHeads + head) * params.numSplits;
  for (var d = tid; d < HEAD_DIM; d += 64u) {
    // merge_chunk's arithmetic, one dim at a time.
    var m = redMl[base].x;
    var sum = redMl[base].y;
    var value = redAcc[base * HEAD_DIM + d];
    for (var i = 1u; i < chunks; i++) {
      let part = redMl[base + i];
      let f = merge_scales(m, part.x);
      m = f.x;
      sum = sum * f.y + part.y * f.z;
      value = value * f.y + redAcc[(base + i) * HEAD_DIM + d] * f.z;
    }
    redOut[(token * params.numHeads + head) * HEAD_DIM + d] = value / sum;
  }
}
