// CPU reference of the sampling pipeline of one row (shaders/sampling.wgsl + the argmax kernel).
// The logit edits and the division by T are rounded to f32 step by step as the GPU computes them,
// so near-ties resolve the same way; masses, probabilities and logprobs are float64.
import { gumbelNoiseRef, type RowLogprobs, type RowSampling } from './sampling.js';

const f32 = Math.fround;

export interface RowSamplingReference {
  /** Logits after bias, penalties, the mask and (temperature > 0) division by T; tokens the mask or filters drop are -inf. */
  processed: Float64Array;
  /** Ids the draw is over, ascending (every token for greedy rows). */
  survivors: number[];
  /** The sampled token. */
  id: number;
  /** null when the row does not ask for logprobs. */
  logprobs: RowLogprobs | null;
}

export function sampleRowReference(logits: ArrayLike<number>, r: RowSampling): RowSamplingReference {
  const edited = editLogits(logits, r);
  if (r.mask) for (let i = 0; i < edited.length; i++) if (!((r.mask[i >>> 5] >>> (i & 31)) & 1)) edited[i] = -Infinity;
  const greedy = !(r.temperature > 0);
  const processed = greedy ? edited : edited.map((l) => f32(l / f32(r.temperature)));
  const survivors = greedy ? processed.map(() => 1) : survivorMask(processed, r);
  for (let i = 0; i < processed.length; i++) if (!survivors[i]) processed[i] = -Infinity;
  const noise = (i: number) => (greedy ? 0 : gumbelNoiseRef(r.seed, r.counter, i));
  const id = argmaxOf(processed.length, (i) => processed[i] + noise(i));
  return {
    processed,
    survivors: indicesOf(survivors),
    id,
    logprobs: r.logprobs === undefined ? null : logprobsReference(logits, id, r.logprobs),
  };
}

/** Logit bias, then repetition, frequency and presence penalties (vLLM's order). */
export function editLogits(logits: ArrayLike<number>, r: RowSampling): Float64Array {
  const out = Float64Array.from(logits, f32);
  for (const [token, bias] of r.logitBias ?? []) out[token] = f32(out[token] + f32(bias));
  const repetition = f32(r.repetitionPenalty ?? 1);
  const frequency = f32(r.frequencyPenalty ?? 0);
  const presence = f32(r.presencePenalty ?? 0);
  const counts = r.outputCounts ?? new Map<number, number>();
  const penalized = new Set([...counts.keys(), ...(repetition !== 1 ? r.promptTokens ?? [] : [])]);
  for (const token of penalized) {
    const count = counts.get(token) ?? 0;
    let l = out[token];
    if (repetition !== 1 && (count > 0 || r.promptTokens?.has(token))) l = l > 0 ? f32(l / repetition) : f32(l * repetition);
    l = f32(l - f32(count * frequency));
    if (count > 0) l = f32(l - presence);
    out[token] = l;
  }
  return out;
}

/** 1 for tokens that min-p, then top-k, then top-p keep (ties at a threshold kept), else 0. */
export function survivorMask(scaled: Float64Array, r: RowSampling): Uint8Array {
  const max = scaled.reduce((m, s) => Math.max(m, s), -Infinity);
  const minP = f32(r.minP ?? 0);
  const keep = scaled.map((s) => (minP <= 0 || Math.exp(s - max) >= minP ? 1 : 0));
  const kept = () => Array.from(scaled.filter((_, i) => keep[i] === 1)).sort((a, b) => b - a);
  const dropBelow = (threshold: number) => scaled.forEach((s, i) => s < threshold && (keep[i] = 0));

  const topK = r.topK ?? 0;
  const byValue = kept();
  if (topK > 0 && topK < byValue.length) dropBelow(byValue[topK - 1]);

  const topP = f32(r.topP ?? 1);
  if (topP < 1) {
    const values = kept();
    const mass = values.map((s) => Math.exp(s - max));
    const needed = topP * mass.reduce((a, b) => a + b, 0);
    let sum = 0;
    const last = mass.findIndex((m) => (sum += m) >= needed);
    dropBelow(values[last === -1 ? values.length - 1 : last]);
  }
  return Uint8Array.from(keep);
}

/** log_softmax of the raw logits: the sampled token's value and the `top` largest, ties to the lower id. */
export function logprobsReference(logits: ArrayLike<number>, id: number, top: number): RowLogprobs {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  const logprob = (i: number) => logits[i] - max - Math.log(sum);
  const order = Array.from({ length: logits.length }, (_, i) => i).sort((a, b) => logits[b] - logits[a] || a - b);
  return { logprob: logprob(id), top: order.slice(0, top).map((i) => ({ id: i, logprob: logprob(i) })) };
}

/** Index of the largest value(i), ties to the lowest index. */
function argmaxOf(n: number, value: (i: number) => number): number {
  let best = 0;
  let bestValue = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = value(i);
    if (v > bestValue) [best, bestValue] = [i, v];
  }
  return best;
}

function indicesOf(mask: ArrayLike<number>): number[] {
  const out: number[] = [];
  for (let i = 0; i < mask.length; i++) if (mask[i]) out.push(i);
  return out;
}
