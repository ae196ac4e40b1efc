// Sampling on the GPU (shaders/sampling.wgsl): logit bias and penalties, grammar masks, min-p / top-k / top-p,
// the Gumbel-max draw, and logprobs. Only ids (and logprobs when a row asks) are read back.
import type { Binding, GpuRuntime, PipelineKey } from '../../gpu/index.js';
import { argmax } from './sample.js';
import { grid, packParams, reductionThreads } from './common.js';

export interface RowSampling {
  /** 0 = greedy (argmax of the processed logits). */
  temperature: number;
  seed: number;
  /** The sequence's step (tokens generated so far), so every draw gets fresh noise. */
  counter: number;
  /** 0 or undefined: off. */
  topK?: number;
  /** 1 or undefined: off; in (0, 1]. */
  topP?: number;
  /** 0 or undefined: off; in [0, 1]. */
  minP?: number;
  /** OpenAI: logit -= count * frequencyPenalty (count in generated tokens). */
  frequencyPenalty?: number;
  /** OpenAI: logit -= presencePenalty if count > 0 (generated tokens). */
  presencePenalty?: number;
  /** HF/vLLM: for tokens in prompt or generated: logit > 0 ? logit / r : logit * r; 1 = off. */
  repetitionPenalty?: number;
  /** token id -> times it appears in the generated tokens (frequency/presence penalties) */
  outputCounts?: ReadonlyMap<number, number>;
  /** token ids of the prompt (repetition penalty also covers them) */
  promptTokens?: ReadonlySet<number>;
  /** token id -> bias added to its logit (OpenAI logit_bias) */
  logitBias?: ReadonlyMap<number, number>;
  /** undefined: no logprobs for this row; 0..20: the sampled token's logprob plus this many top alternatives */
  logprobs?: number;
  /**
   * Tokens allowed next (a grammar's mask): bit t of word t >> 5 set when token t may be sampled,
   * ceil(vocab / 32) words. The others get -inf before any filter or draw. undefined: every token.
   */
  mask?: Uint32Array;
}

export interface TokenLogprob {
  id: number;
  logprob: number;
}

export interface RowLogprobs {
  /** of the sampled token */
  logprob: number;
  /** most likely tokens, highest first */
  top: TokenLogprob[];
}

export const MAX_LOGPROBS = 20;
/** Bytes per row of RowParams in shaders/sampling.wgsl. */
export const ROW_SAMPLING_BYTES = 48;
const ROW_WORDS = ROW_SAMPLING_BYTES / 4;
const EDIT_WORDS = 5;

/** Words of a row's token mask. */
export function maskWords(vocab: number): number {
  return Math.ceil(vocab / 32);
}

/** Packs per-row sampling parameters into the layout of RowParams; masked rows get their slot in order. */
export function packRowSampling(rows: RowSampling[]): Uint32Array {
  let slot = 0;
  const u = new Uint32Array(Math.max(1, rows.length) * ROW_WORDS);
  const f = new Float32Array(u.buffer);
  rows.forEach((r, i) => {
    const o = i * ROW_WORDS;
    f[o] = r.temperature;
    u[o + 1] = r.seed >>> 0;
    u[o + 2] = r.counter >>> 0;
    u[o + 3] = r.topK ?? 0;
    f[o + 4] = r.topP ?? 1;
    f[o + 5] = r.minP ?? 0;
    f[o + 6] = r.repetitionPenalty ?? 1;
    f[o + 7] = r.frequencyPenalty ?? 0;
    f[o + 8] = r.presencePenalty ?? 0;
    u[o + 9] = (r.logprobs ?? -1) >>> 0;
    u[o + 10] = (r.mask ? slot++ : -1) >>> 0;
  });
  return u;
}

/** What a step's sampling needs on the GPU, worked out on the CPU. */
export interface SamplingPlan {
  rowParams: Uint32Array;
  /** Edit structs (row, token, bias, count, inPrompt), one per (row, token) that bias or penalties touch. */
  edits: Uint32Array;
  editCount: number;
  /** The masks of the rows that have one, in row order: mask i goes to slot i (words i * maskWords(vocab)). */
  masks: Uint32Array[];
  /** Some row has temperature > 0. */
  sampled: boolean;
  /** Some row has temperature > 0 and an active min-p, top-k or top-p. */
  filtered: boolean;
  /** Most top alternatives any row asks for; -1 when no row asks for logprobs. */
  topLogprobs: number;
}

export function planSampling(rows: RowSampling[], vocab: number): SamplingPlan {
  rows.forEach((r, i) => validateRow(r, i, vocab));
  const edits = rows.flatMap((r, row) => rowEdits(r, row, vocab));
  const words = new Uint32Array(Math.max(1, edits.length) * EDIT_WORDS);
  const floats = new Float32Array(words.buffer);
  edits.forEach((e, i) => {
    const o = i * EDIT_WORDS;
    words[o] = e.row;
    words[o + 1] = e.token;
    floats[o + 2] = e.bias;
    words[o + 3] = e.count;
    words[o + 4] = e.inPrompt ? 1 : 0;
  });
  return {
    rowParams: packRowSampling(rows),
    edits: words,
    editCount: edits.length,
    masks: rows.flatMap((r) => (r.mask ? [r.mask] : [])),
    sampled: rows.some((r) => r.temperature > 0),
    filtered: rows.some((r) => r.temperature > 0 && hasFilter(r, vocab)),
    topLogprobs: mostLogprobs(rows),
  };
}

/** The most top alternatives any row asks for; -1 when no row asks for logprobs. */
export function mostLogprobs(rows: RowSampling[]): number {
  return rows.reduce((most, r) => Math.max(most, r.logprobs ?? -1), -1);
}

function hasFilter(r: RowSampling, vocab: number): boolean {
  const topK = r.topK ?? 0;
  return (r.minP ?? 0) > 0 || (topK > 0 && topK < vocab) || (r.topP ?? 1) < 1;
}

function validateRow(r: RowSampling, i: number, vocab: number): void {
  const fail = (what: string) => {
    throw new RangeError(`sampling row ${i}: ${what}`);
  };
  if (!(r.temperature >= 0)) fail(`temperature ${r.temperature} must be >= 0`);
  if (r.topK !== undefined && !(Number.isInteger(r.topK) && r.topK >= 0)) fail(`topK ${r.topK} must be an integer >= 0`);
  if (r.topP !== undefined && !(r.topP > 0 && r.topP <= 1)) fail(`topP ${r.topP} must be in (0, 1]`);
  if (r.minP !== undefined && !(r.minP >= 0 && r.minP <= 1)) fail(`minP ${r.minP} must be in [0, 1]`);
  if (r.repetitionPenalty !== undefined && !(r.repetitionPenalty > 0)) fail(`repetitionPenalty ${r.repetitionPenalty} must be > 0`);
  if (r.logprobs !== undefined && !(Number.isInteger(r.logprobs) && r.logprobs >= 0 && r.logprobs <= MAX_LOGPROBS)) {
    fail(`logprobs ${r.logprobs} must be an integer in [0, ${MAX_LOGPROBS}]`);
  }
  if (r.mask && r.mask.length !== maskWords(vocab)) fail(`mask has ${r.mask.length} words; a vocabulary of ${vocab} needs ${maskWords(vocab)}`);
}

interface Edit {
  row: number;
  token: number;
  bias: number;
  count: number;
  inPrompt: boolean;
}

/** The row's bias and penalty edits, one per token; tokens that no active control changes are left out. */
function rowEdits(r: RowSampling, row: number, vocab: number): Edit[] {
  const repetition = (r.repetitionPenalty ?? 1) !== 1;
  const outputPenalty = repetition || (r.frequencyPenalty ?? 0) !== 0 || (r.presencePenalty ?? 0) !== 0;
  const byToken = new Map<number, Edit>();
  const edit = (token: number) => {
    let e = byToken.get(token);
    if (!e) {
      if (!(Number.isInteger(token) && token >= 0 && token < vocab)) throw new RangeError(`sampling row ${row}: token id ${token} outside the vocabulary (${vocab})`);
      byToken.set(token, (e = { row, token, bias: 0, count: 0, inPrompt: false }));
    }
    return e;
  };
  for (const [token, bias] of r.logitBias ?? []) if (bias !== 0) edit(token).bias = bias;
  if (outputPenalty) for (const [token, count] of r.outputCounts ?? []) if (count > 0) edit(token).count = count;
  if (repetition) for (const token of r.promptTokens ?? []) edit(token).inPrompt = true;
  return [...byToken.values()];
}

/** Words per row of the logprobs buffer for `top` alternatives: the sampled logprob, then (id, logprob) pairs. */
export function logprobsRowWords(top: number): number {
  return 1 + 2 * top;
}

/** Buffers of one step's sampling. The grow-only ones are asked for by size. */
export interface SamplingBuffers {
  /** f32 [rows, vocab], edited in place. */
  logits: GPUBuffer;
  /** ROW_SAMPLING_BYTES per row. */
  rowParams: GPUBuffer;
  /** i32 [rows], the sampled ids. */
  ids: GPUBuffer;
  /** u32 [rows, logprobsRowWords(MAX_LOGPROBS)]. */
  logprobs: GPUBuffer;
  edits(bytes: number): GPUBuffer;
  rawLogits(bytes: number): GPUBuffer;
  /** u32 [masked rows, maskWords(vocab)]. */
  masks(bytes: number): GPUBuffer;
}

/**
 * Records the sampling of one token per row of `b.logits` into `b.ids` (rows without sampling
 * parameters are greedy), and the logprobs of rows that ask for them into `b.logprobs`.
 */
export function recordSampling(rt: GpuRuntime, b: SamplingBuffers, rows: RowSampling[] | undefined, count: number, vocab: number): void {
  if (rows && rows.length !== count) throw new Error(`sampling parameters for ${rows.length} rows, but ${count} rows to sample`);
  if (!rows?.length) {
    argmax(rt, b.logits, b.ids, count, vocab);
    return;
  }
  const plan = planSampling(rows, vocab);
  rt.buffers.write(b.rowParams, plan.rowParams);
  const raw = plan.topLogprobs >= 0 ? b.rawLogits(count * vocab * 4) : null;
  if (raw) rt.copy(b.logits, 0, raw, 0, count * vocab * 4);
  if (plan.editCount > 0) {
    const edits = b.edits(plan.edits.byteLength);
    rt.buffers.write(edits, plan.edits);
    applyEdits(rt, b.logits, b.rowParams, edits, plan.editCount, vocab);
  }
  if (plan.masks.length > 0) {
    // Each row's mask is written to its slot as it is (no packed copy of a 16 KiB-per-row array).
    const rowBytes = maskWords(vocab) * 4;
    const masks = b.masks(plan.masks.length * rowBytes);
    plan.masks.forEach((mask, slot) => rt.buffers.write(masks, mask, slot * rowBytes));
    applyMasks(rt, b.logits, b.rowParams, masks, count, vocab);
  }
  if (plan.filtered) filterLogits(rt, b.logits, b.rowParams, count, vocab);
  if (plan.sampled) perturbLogits(rt, b.logits, b.rowParams, count, vocab);
  argmax(rt, b.logits, b.ids, count, vocab);
  if (raw) tokenLogprobs(rt, raw, b.rowParams, b.ids, b.logprobs, count, vocab, plan.topLogprobs);
}

function kernel(rt: GpuRuntime, entryPoint: string): PipelineKey {
  return { shader: 'sampling', entryPoint, defines: { WG: reductionThreads(rt) } };
}

/** Adds each edit's bias to its logit, then applies the row's repetition, frequency and presence penalties. */
export function applyEdits(rt: GpuRuntime, logits: Binding, rowParams: Binding, edits: Binding, editCount: number, vocab: number): void {
  const params = packParams([{ u32: 0 }, { u32: vocab }, { u32: editCount }]);
  rt.dispatch(kernel(rt, 'apply_edits'), params, [logits, rowParams, edits], grid(editCount, 64));
}

/** Sets to -inf the logits of tokens a row's mask leaves out (rows with a mask slot only). */
export function applyMasks(rt: GpuRuntime, logits: Binding, rowParams: Binding, masks: Binding, rows: number, vocab: number): void {
  const params = packParams([{ u32: rows }, { u32: vocab }, { u32: maskWords(vocab) }]);
  rt.dispatch(kernel(rt, 'apply_mask'), params, [logits, rowParams, masks], grid(rows * vocab, 256));
}

/** Sets to -inf the logits that min-p, top-k and top-p drop (rows with temperature > 0 only). */
export function filterLogits(rt: GpuRuntime, logits: Binding, rowParams: Binding, rows: number, vocab: number): void {
  rt.dispatch(kernel(rt, 'filter_tokens'), packParams([{ u32: rows }, { u32: vocab }]), [logits, rowParams], grid(rows));
}

/** Turns logits into logits / T + Gumbel noise in place for rows with temperature > 0. */
export function perturbLogits(rt: GpuRuntime, logits: Binding, rowParams: Binding, rows: number, vocab: number): void {
  rt.dispatch(kernel(rt, 'perturb'), packParams([{ u32: rows }, { u32: vocab }]), [logits, rowParams], grid(rows * vocab, 256));
}

/** Logprobs (log_softmax of `rawLogits`) of the sampled ids and the `top` most likely tokens, rows with logprobs only. */
export function tokenLogprobs(rt: GpuRuntime, rawLogits: Binding, rowParams: Binding, ids: Binding, out: Binding, rows: number, vocab: number, top: number): void {
  const params = packParams([{ u32: rows }, { u32: vocab }, { u32: logprobsRowWords(top) }]);
  rt.dispatch(kernel(rt, 'token_logprobs'), params, [rawLogits, rowParams, ids, out], grid(rows));
}

/** Reads the words `tokenLogprobs` wrote (rows of logprobsRowWords(top)) into one entry per row. */
export function decodeLogprobs(words: ArrayBuffer, rows: RowSampling[], top: number): (RowLogprobs | null)[] {
  const u = new Uint32Array(words);
  const f = new Float32Array(words);
  const stride = logprobsRowWords(top);
  return rows.map((r, i) => {
    if (r.logprobs === undefined) return null;
    const o = i * stride;
    const alternatives = Array.from({ length: r.logprobs }, (_, j) => ({ id: u[o + 1 + 2 * j], logprob: f[o + 2 + 2 * j] }));
    return { logprob: f[o], top: alternatives };
  });
}

/** CPU reference of the noise, for tests: the same hash as the shader. */
export function gumbelNoiseRef(seed: number, counter: number, index: number): number {
  const pcg = (v: number) => {
    const state = (Math.imul(v >>> 0, 747796405) + 2891336453) >>> 0;
    const word = Math.imul(((state >>> ((state >>> 28) + 4)) ^ state) >>> 0, 277803737) >>> 0;
    return ((word >>> 22) ^ word) >>> 0;
  };
  const h = pcg((seed ^ pcg((counter ^ pcg(index)) >>> 0)) >>> 0);
  const u = ((h >>> 8) + 0.5) / 16777216;
  return -Math.log(-Math.log(u));
}
