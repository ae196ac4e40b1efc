// Sampling controls on the logits of the sample rows (one row per sequence), in vLLM v1's order:
//   apply_edits     logit bias, then repetition / frequency / presence penalties, from a sparse list
//                   of edits (one per (row, token), so no two threads touch one logit). Every row.
//   filter_tokens   rows with temperature > 0 and an active min_p / top_k / top_p: on logits / T,
//                   drops tokens with p < minP * max p, keeps the k largest, then the smallest set of
//                   largest tokens whose mass (over those survivors) reaches topP; ties at a
//                   threshold are kept. Dropped logits become -inf. One workgroup per row.
//   perturb         rows with temperature > 0: logits / T + Gumbel noise; the argmax kernel
//                   (sample.wgsl) then picks the token. Gumbel-max: argmax(logits / T + G), G ~
//                   Gumbel(0, 1) i.i.d., is an exact draw from softmax(logits / T) over the
//                   survivors. The noise is a hash of (seed, counter, token id), so a sequence's
//                   draw depends only on its own seed and step, never on what else is batched.
//   token_logprobs  rows with logprobs >= 0, on a copy of the raw logits: log_softmax of the
//                   sampled token and of the `logprobs` most likely tokens (ties to the lower id).
//                   One workgroup per row.
// The per-row kernels use workgroups of WG threads (256 on a GPU, 8 on a CPU adapter).
// Thresholds are exact: bisection over the order-preserving u32 image of the f32 values, each step
// a workgroup reduction of the count or mass over the row (at most 32 steps; see threshold_key).
//
// Bindings: 0 uniform Params { rows, vocab, count (edits in apply_edits; words per mask in
//             apply_mask; words per row of out in token_logprobs), _ }
//           1 logits f32 [rows, vocab] (read_write; the raw copy in token_logprobs)
//           2 rowParams RowParams [rows] (read)
//           3 apply_edits: edits Edit [count] (read); apply_mask: masks u32 [slots, count] (read),
//             bit t of word t / 32 set when token t is allowed; token_logprobs: ids i32 [rows] (read)
//           4 token_logprobs: out u32 [rows, count]: word 0 the sampled token's logprob (f32 bits),
//             then (id, logprob f32 bits) pairs, most likely first.

const WG: u32 = {{WG}}u;
#include "reduce"
const NO_INDEX: u32 = 0xffffffffu;
const NO_KEY: u32 = 0xffffffffu;
const LOWEST: f32 = -3.4028234663852886e38;

struct Params { rows: u32, vocab: u32, count: u32, _p0: u32 }

struct RowParams {
  temperature: f32,       // <= 0: greedy
  seed: u32,
  counter: u32,
  topK: u32,              // 0: off
  topP: f32,              // 1: off
  minP: f32,              // 0: off
  repetitionPenalty: f32, // 1: off
  frequencyPenalty: f32,
  presencePenalty: f32,
  logprobs: i32,          // -1: none; else the number of top alternatives
  maskSlot: i32,          // -1: no mask; else the row's mask in masks
  _p1: u32,
}

struct Edit {
  row: u32,
  token: u32,
  bias: f32,
  count: u32,      // times the token appears in the generated tokens
  inPrompt: u32,   // 1 if the token is in the prompt
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> logits: array<f32>;
@group(0) @binding(2) var<storage, read> rowParams: array<RowParams>;
@group(0) @binding(3) var<storage, read> edits: array<Edit>;
@group(0) @binding(3) var<storage, read> ids: array<i32>;
@group(0) @binding(3) var<storage, read> masks: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<u32>;

var<workgroup> partialU: array<u32, WG>;
var<workgroup> partialU2: array<u32, WG>;

// ------------------------------------------------------------------------------------ edits

@compute @workgroup_size(64)
fn apply_edits(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = gid.y * nwg.x * 64u + gid.x;
  if (e >= params.count) { return; }
  let edit = edits[e];
  let rp = rowParams[edit.row];
  let i = edit.row * params.vocab + edit.token;
  var l = logits[i] + edit.bias;
  if (rp.repetitionPenalty != 1.0 && (edit.count > 0u || edit.inPrompt != 0u)) {
    l = select(l * rp.repetitionPenalty, l / rp.repetitionPenalty, l > 0.0);
  }
  l -= f32(edit.count) * rp.frequencyPenalty;
  if (edit.count > 0u) { l -= rp.presencePenalty; }
  logits[i] = l;
}

// ------------------------------------------------------------------------------------- mask

@compute @workgroup_size(256)
fn apply_mask(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * nwg.x * 256u + gid.x;
  if (i >= params.rows * params.vocab) { return; }
  let slot = rowParams[i / params.vocab].maskSlot;
  if (slot < 0) { return; }
  let token = i % params.vocab;
  let word = masks[u32(slot) * params.count + token / 32u];
  if (((word >> (token % 32u)) & 1u) == 0u) { logits[i] = negative_infinity(); }
}

// ---------------------------------------------------------------------------------- perturb

fn pcg(v: u32) -> u32 {
  let state = v * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}

// Uniform in (0, 1), never 0 or 1, from 24 random bits.
fn uniform01(seed: u32, counter: u32, index: u32) -> f32 {
  let h = pcg(seed ^ pcg(counter ^ pcg(index)));
  return (f32(h >> 8u) + 0.5) / 16777216.0;
}

fn scaled(l: f32, rp: RowParams) -> f32 {
  return l / rp.temperature;
}

@compute @workgroup_size(256)
fn perturb(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * nwg.x * 256u + gid.x;
  if (i >= params.rows * params.vocab) { return; }
  let rp = rowParams[i / params.vocab];
  if (rp.temperature <= 0.0) { return; }
  let u = uniform01(rp.seed, rp.counter, i % params.vocab);
  logits[i] = scaled(logits[i], rp) - log(-log(u));
}

// ------------------------------------------------------------------------ workgroup reductions

fn workgroup_split(mine: Split, tid: u32) -> Split {
  partialF[tid] = mine.weight;
  partialU[tid] = mine.minAbove;
  partialU2[tid] = mine.maxBelow;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    if (tid < stride) {
      partialF[tid] += partialF[tid + stride];
      partialU[tid] = min(partialU[tid], partialU[tid + stride]);
      partialU2[tid] = max(partialU2[tid], partialU2[tid + stride]);
    }
    workgroupBarrier();
  }
  return Split(workgroupUniformLoad(&partialF[0]), workgroupUniformLoad(&partialU[0]), workgroupUniformLoad(&partialU2[0]));
}

struct Best { value: f32, index: u32 }

fn better(a: Best, b: Best) -> bool {
  return a.value > b.value || (a.value == b.value && a.index < b.index);
}

// The largest (value, lowest index) pair of the workgroup; every thread gets it.
fn workgroup_best(mine: Best, tid: u32) -> Best {
  partialF[tid] = mine.value;
  partialU[tid] = mine.index;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    if (tid < stride && better(Best(partialF[tid + stride], partialU[tid + stride]), Best(partialF[tid], partialU[tid]))) {
      partialF[tid] = partialF[tid + stride];
      partialU[tid] = partialU[tid + stride];
    }
    workgroupBarrier();
  }
  return Best(workgroupUniformLoad(&partialF[0]), workgroupUniformLoad(&partialU[0]));
}

// ----------------------------------------------------------------------------------- filter

// Order-preserving image of an f32 in u32 (a < b <=> key(a) < key(b)); -0 and +0 are one value.
fn key(x: f32) -> u32 {
  let u = select(bitcast<u32>(x), 0u, x == 0.0);
  return select(u | 0x80000000u, ~u, (u & 0x80000000u) != 0u);
}

// The row being filtered: its logits, parameters, and the max of logits / T.
struct Row { base: u32, rp: RowParams, maxScaled: f32 }

fn passes_min_p(s: f32, row: Row) -> bool {
  return row.rp.minP <= 0.0 || exp(s - row.maxScaled) >= row.rp.minP;
}

// The row's candidates (tokens passing min_p with key >= floor) split at key `at`: the weight of
// those >= at (1 per token, or with byMass its unnormalized probability exp(logit / T - max)), the
// smallest key >= at, and the largest key < at.
struct Split { weight: f32, minAbove: u32, maxBelow: u32 }

fn split_at(row: Row, floor: u32, at: u32, byMass: bool, tid: u32) -> Split {
  var mine = Split(0.0, NO_KEY, 0u);
  for (var i = tid; i < params.vocab; i += WG) {
    let s = scaled(logits[row.base + i], row.rp);
    let k = key(s);
    if (k < floor || !passes_min_p(s, row)) { continue; }
    if (k >= at) {
      mine.weight += select(1.0, exp(s - row.maxScaled), byMass);
      mine.minAbove = min(mine.minAbove, k);
    } else {
      mine.maxBelow = max(mine.maxBelow, k);
    }
  }
  return workgroup_split(mine, tid);
}

// Largest candidate key t whose candidates >= t weigh at least the goal: topK tokens (the k-th
// largest value), or topP of the candidates' mass. floor (keep every candidate) if they all weigh no
// more than the goal. Bisection over keys, each bound snapped to a candidate's key, so it ends as soon
// as the bounds meet (at most 32 halvings of the key range).
fn threshold_key(row: Row, floor: u32, byMass: bool, tid: u32) -> u32 {
  let all = split_at(row, floor, floor, byMass, tid);
  let goal = select(f32(row.rp.topK), row.rp.topP * all.weight, byMass);
  if (all.weight <= goal) { return floor; }
  var lo = all.minAbove;          // reaches the goal
  var hi = key(row.maxScaled);    // the answer is a candidate key in [lo, hi]
  while (lo < hi) {
    let mid = lo + (hi - lo) / 2u + 1u;
    let split = split_at(row, floor, mid, byMass, tid);
    if (split.weight >= goal) { lo = split.minAbove; } else { hi = split.maxBelow; }
  }
  return lo;
}

fn top_k_key(row: Row, tid: u32) -> u32 {
  if (row.rp.topK == 0u || row.rp.topK >= params.vocab) { return 0u; }
  return threshold_key(row, 0u, false, tid);
}

fn top_p_key(row: Row, floor: u32, tid: u32) -> u32 {
  if (row.rp.topP >= 1.0) { return floor; }
  return threshold_key(row, floor, true, tid);
}

// WGSL rejects infinite constants, so -inf is built from a value the shader compiler cannot fold.
fn negative_infinity() -> f32 {
  return bitcast<f32>(0xff800000u | min(params.rows, 0u));
}

fn needs_filter(rp: RowParams) -> bool {
  return rp.temperature > 0.0 && (rp.minP > 0.0 || (rp.topK > 0u && rp.topK < params.vocab) || rp.topP < 1.0);
}

@compute @workgroup_size(WG)
fn filter_tokens(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) tid: u32) {
  let r = wid.y * nwg.x + wid.x;
  if (r >= params.rows) { return; }
  let rp = rowParams[r];
  if (!needs_filter(rp)) { return; }
  let base = r * params.vocab;
  var localMax = LOWEST;
  for (var i = tid; i < params.vocab; i += WG) { localMax = max(localMax, scaled(logits[base + i], rp)); }
  let row = Row(base, rp, workgroup_max(localMax, tid));
  let keep = top_p_key(row, top_k_key(row, tid), tid);
  let negInf = negative_infinity();
  for (var i = tid; i < params.vocab; i += WG) {
    let s = scaled(logits[base + i], rp);
    if (key(s) < keep || !passes_min_p(s, row)) { logits[base + i] = negInf; }
  }
}

// ---------------------------------------------------------------------------- token_logprobs

// True if (value, index) comes after `previous` in the order value desc, index asc.
fn follows(value: f32, index: u32, previous: Best) -> bool {
  return value < previous.value || (value == previous.value && index > previous.index);
}

@compute @workgroup_size(WG)
fn token_logprobs(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) tid: u32) {
  let r = wid.y * nwg.x + wid.x;
  if (r >= params.rows) { return; }
  let top = rowParams[r].logprobs;
  if (top < 0) { return; }
  let base = r * params.vocab;
  var localMax = LOWEST;
  for (var i = tid; i < params.vocab; i += WG) { localMax = max(localMax, logits[base + i]); }
  let m = workgroup_max(localMax, tid);
  var localSum = 0.0;
  for (var i = tid; i < params.vocab; i += WG) { localSum += exp(logits[base + i] - m); }
  let logZ = log(workgroup_sum(localSum, tid)); // log-softmax(l) = l - m - logZ
  let o = r * params.count;
  if (tid == 0u) { out[o] = bitcast<u32>(logits[base + u32(ids[r])] - m - logZ); }
  var previous = Best(0.0, NO_INDEX);
  for (var j = 0u; j < u32(top); j++) {
    var mine = Best(LOWEST, NO_INDEX);
    for (var i = tid; i < params.vocab; i += WG) {
      let v = logits[base + i];
      if ((j == 0u || follows(v, i, previous)) && better(Best(v, i), mine)) { mine = Best(v, i); }
    }
    previous = workgroup_best(mine, tid);
    if (tid == 0u) {
      out[o + 1u + 2u * j] = previous.index;
      out[o + 2u + 2u * j] = bitcast<u32>(previous.value - m - logZ);
    }
  }
}
