// Sampling on the GPU against its CPU reference (sampling.reference.ts), and against the
// distributions it must draw from: Gumbel-max temperature sampling, logit bias, penalties,
// min-p / top-k / top-p, logprobs.
import { afterAll, describe, expect, it } from 'vitest';
import type { GpuRuntime } from '../../src/gpu/index.js';
import { argmax } from '../../src/model/kernels/sample.js';
import {
  applyEdits,
  decodeLogprobs,
  filterLogits,
  gumbelNoiseRef,
  logprobsRowWords,
  maskWords,
  MAX_LOGPROBS,
  mostLogprobs,
  packRowSampling,
  perturbLogits,
  planSampling,
  recordSampling,
  ROW_SAMPLING_BYTES,
  type RowLogprobs,
  type RowSampling,
  type SamplingBuffers,
} from '../../src/model/kernels/sampling.js';
import { editLogits, logprobsReference, sampleRowReference } from '../../src/model/kernels/sampling.reference.js';
import { getRuntime, KERNEL_SHAPES, randomF32, rng, useShapes } from '../helpers/gpu.js';
import { loadShared, prefillBatch, type LoadedModel } from '../helpers/model.js';

async function sampleOnGpu(logits: Float32Array, rows: RowSampling[], vocab: number): Promise<Int32Array> {
  const rt = await getRuntime();
  const l = rt.buffers.createWith('logits', logits);
  const p = rt.buffers.createWith('rows', packRowSampling(rows));
  const ids = rt.buffers.create('ids', rows.length * 4);
  perturbLogits(rt, l, p, rows.length, vocab);
  argmax(rt, l, ids, rows.length, vocab);
  await rt.sync();
  const out = await rt.buffers.readI32(ids, 0, rows.length);
  for (const b of [l, p, ids]) rt.buffers.destroy(b);
  return out;
}

function sampleOnCpu(logits: Float32Array, r: RowSampling, row: number, vocab: number): number {
  let best = 0;
  let bestValue = -Infinity;
  for (let i = 0; i < vocab; i++) {
    const x = logits[row * vocab + i];
    const v = r.temperature > 0 ? x / r.temperature + gumbelNoiseRef(r.seed, r.counter, i) : x;
    if (v > bestValue) [best, bestValue] = [i, v];
  }
  return best;
}

/** Sampling buffers of one test run, destroyed by `release`. */
function testBuffers(rt: GpuRuntime, logits: Float32Array, rows: number): SamplingBuffers & { release(): void } {
  const made: GPUBuffer[] = [];
  const make = (label: string, bytes: number) => {
    const b = rt.buffers.create(label, bytes);
    made.push(b);
    return b;
  };
  const logitsBuffer = rt.buffers.createWith('logits', logits);
  made.push(logitsBuffer);
  return {
    logits: logitsBuffer,
    rowParams: make('rowParams', rows * ROW_SAMPLING_BYTES),
    ids: make('ids', rows * 4),
    logprobs: make('logprobs', rows * logprobsRowWords(MAX_LOGPROBS) * 4),
    edits: (bytes) => make('edits', bytes),
    rawLogits: (bytes) => make('rawLogits', bytes),
    masks: (bytes) => make('masks', bytes),
    release: () => made.forEach((b) => rt.buffers.destroy(b)),
  };
}

/** The production sampling tail (recordSampling) on given logits: ids and logprobs. */
async function runSampling(logits: Float32Array, rows: RowSampling[], vocab: number): Promise<{ ids: Int32Array; logprobs: (RowLogprobs | null)[] }> {
  const rt = await getRuntime();
  const b = testBuffers(rt, logits, rows.length);
  try {
    recordSampling(rt, b, rows, rows.length, vocab);
    await rt.sync();
    const ids = await rt.buffers.readI32(b.ids, 0, rows.length);
    const top = mostLogprobs(rows);
    const logprobs = top < 0 ? rows.map(() => null) : decodeLogprobs(await rt.buffers.read(b.logprobs, 0, rows.length * logprobsRowWords(top) * 4), rows, top);
    return { ids, logprobs };
  } finally {
    b.release();
  }
}

/** Logits after the edits and filters only (no noise): dropped tokens are -inf. */
async function filteredOnGpu(logits: Float32Array, rows: RowSampling[], vocab: number): Promise<Float32Array> {
  const rt = await getRuntime();
  const plan = planSampling(rows, vocab);
  const b = testBuffers(rt, logits, rows.length);
  try {
    rt.buffers.write(b.rowParams, plan.rowParams);
    const edits = b.edits(plan.edits.byteLength);
    rt.buffers.write(edits, plan.edits);
    if (plan.editCount) applyEdits(rt, b.logits, b.rowParams, edits, plan.editCount, vocab);
    filterLogits(rt, b.logits, b.rowParams, rows.length, vocab);
    await rt.sync();
    return await rt.buffers.readF32(b.logits, 0, rows.length * vocab);
  } finally {
    b.release();
  }
}

function rowOf(logits: Float32Array, r: number, vocab: number): Float32Array {
  return logits.subarray(r * vocab, (r + 1) * vocab);
}

/** Ids of the n largest values, largest first. */
function largest(values: ArrayLike<number>, n: number): number[] {
  return Array.from({ length: values.length }, (_, i) => i).sort((a, b) => values[b] - values[a] || a - b).slice(0, n);
}

function finiteIds(values: ArrayLike<number>): number[] {
  return Array.from({ length: values.length }, (_, i) => i).filter((i) => Number.isFinite(values[i]));
}

function expectLogprobsClose(gpu: RowLogprobs | null, ref: RowLogprobs | null, label: string): void {
  if (ref === null) {
    expect(gpu, label).toBeNull();
    return;
  }
  expect(gpu, label).not.toBeNull();
  expect(Math.abs(gpu!.logprob - ref.logprob), `${label}: sampled logprob`).toBeLessThan(1e-4);
  expect(gpu!.top.map((t) => t.id), `${label}: top ids`).toEqual(ref.top.map((t) => t.id));
  gpu!.top.forEach((t, j) => expect(Math.abs(t.logprob - ref.top[j].logprob), `${label}: top ${j}`).toBeLessThan(1e-4));
}

/** Every control alone and combined; penalized tokens and biases aimed at each row's most likely tokens. */
function mixedRows(logits: Float32Array, vocab: number, count: number): RowSampling[] {
  const random = rng(99);
  const pick = () => Math.floor(random() * vocab);
  const specs: Array<(top: number[]) => Omit<RowSampling, 'seed' | 'counter'>> = [
    () => ({ temperature: 0 }),
    () => ({ temperature: 0, logprobs: 5 }),
    () => ({ temperature: 0.8 }),
    () => ({ temperature: 1, topK: 50 }),
    () => ({ temperature: 1, topK: 1, logprobs: 0 }),
    () => ({ temperature: 0.7, topP: 0.9 }),
    () => ({ temperature: 1.3, minP: 0.1, logprobs: 2 }),
    () => ({ temperature: 1, topK: 200, topP: 0.8, minP: 0.05, logprobs: 20 }),
    (top) => ({ temperature: 0, repetitionPenalty: 1.3, promptTokens: new Set([top[0], top[2], pick(), pick()]), outputCounts: new Map([[top[1], 1]]) }),
    (top) => ({ temperature: 0.9, frequencyPenalty: 0.5, presencePenalty: 0.3, outputCounts: new Map([[top[0], 3], [top[1], 1], [pick(), 2]]), logprobs: 1 }),
    (top) => ({ temperature: 0, logitBias: new Map([[top[0], -2], [top[3], 1.5], [pick(), 5]]) }),
    (top) => ({ temperature: 0, frequencyPenalty: 0.7, presencePenalty: 0.4, outputCounts: new Map([[top[0], 2], [top[1], 1]]) }),
    (top) => ({
      temperature: 1.1, topK: 100, topP: 0.95, minP: 0.02, logprobs: 3,
      repetitionPenalty: 1.2, frequencyPenalty: 0.2, presencePenalty: 0.5,
      promptTokens: new Set([top[0], top[4], pick()]), outputCounts: new Map([[top[1], 2], [top[4], 1]]),
      logitBias: new Map([[top[1], -1], [top[5], 2], [top[4], 0.5]]),
    }),
    () => ({ temperature: 0.6, topP: 0.5, logitBias: new Map([[pick(), 100]]) }),
  ];
  return Array.from({ length: count }, (_, r) => ({
    ...specs[r % specs.length](largest(rowOf(logits, r, vocab), 6)),
    seed: 1000 + r,
    counter: r * 3,
  }));
}

/** A mask allowing about `share` of the tokens, never the row's `banned` ones. */
function randomMask(vocab: number, seed: number, share: number, banned: number[] = []): Uint32Array {
  const random = rng(seed);
  const mask = new Uint32Array(maskWords(vocab));
  for (let t = 0; t < vocab; t++) if (random() < share && !banned.includes(t)) mask[t >>> 5] |= 1 << (t & 31);
  return mask;
}

const maskAllows = (mask: Uint32Array, t: number) => ((mask[t >>> 5] >>> (t & 31)) & 1) === 1;

describe('grammar masks', () => {
  it('masked rows draw only allowed tokens and agree with the CPU reference; free rows in the batch are untouched', async () => {
    const vocab = 3001; // the last mask word is partial
    const count = 28;
    const logits = randomF32(count * vocab, 23, 4);
    const freeRows = mixedRows(logits, vocab, count);
    const free = freeRows.map((r, i) => sampleRowReference(rowOf(logits, i, vocab), r));
    // Every other row is constrained, and its mask bans the token it would draw free and its six
    // most likely tokens, so the mask has to matter.
    const rows = freeRows.map((r, i) =>
      i % 2 ? r : { ...r, mask: randomMask(vocab, 500 + i, i % 4 ? 0.05 : 0.5, [free[i].id, ...largest(rowOf(logits, i, vocab), 6)]) });
    const refs = rows.map((r, i) => sampleRowReference(rowOf(logits, i, vocab), r));
    const gpu = await runSampling(logits, rows, vocab);
    expect(Array.from(gpu.ids)).toEqual(refs.map((r) => r.id));
    rows.forEach((r, i) => {
      if (r.mask) {
        expect(maskAllows(r.mask, gpu.ids[i]), `row ${i}`).toBe(true);
        expect(gpu.ids[i], `row ${i} differs from its unmasked draw`).not.toBe(free[i].id);
      } else {
        expect(gpu.ids[i], `row ${i}`).toBe(free[i].id);
      }
      expectLogprobsClose(gpu.logprobs[i], refs[i].logprobs, `row ${i}`);
    });
  });

  it('a one-token mask forces that token over logit_bias +100, top-k 1 and greedy', async () => {
    const vocab = 2048;
    const logits = randomF32(3 * vocab, 31, 4);
    const only = (t: number) => {
      const mask = new Uint32Array(maskWords(vocab));
      mask[t >>> 5] |= 1 << (t & 31);
      return mask;
    };
    const rows: RowSampling[] = [
      { temperature: 0, seed: 1, counter: 0, mask: only(2047), logitBias: new Map([[5, 100]]) },
      { temperature: 1, seed: 2, counter: 9, topK: 1, mask: only(31) },
      { temperature: 0.7, seed: 3, counter: 4, topP: 0.5, minP: 0.2, mask: only(32) },
    ];
    const gpu = await runSampling(logits, rows, vocab);
    expect(Array.from(gpu.ids)).toEqual([2047, 31, 32]);
  });

  it('a mask of the wrong length is an error naming its size', () => {
    expect(() => planSampling([{ temperature: 0, seed: 0, counter: 0, mask: new Uint32Array(3) }], 100)).toThrow(/mask has 3 words; a vocabulary of 100 needs 4/);
  });
});

describe('temperature sampling (Gumbel-max)', () => {
  it('draws the same token as the CPU reference for every row, greedy rows untouched', async () => {
    const vocab = 3000;
    const rows: RowSampling[] = [
      { temperature: 0, seed: 1, counter: 0 },
      { temperature: 0.7, seed: 42, counter: 3 },
      { temperature: 1.5, seed: 42, counter: 4 },
      { temperature: 1, seed: 7, counter: 0 },
    ];
    const logits = randomF32(rows.length * vocab, 11, 4);
    const gpu = await sampleOnGpu(logits, rows, vocab);
    expect(Array.from(gpu)).toEqual(rows.map((r, i) => sampleOnCpu(logits, r, i, vocab)));
  });

  it('samples from softmax(logits / T): frequencies over 4000 draws', async () => {
    const vocab = 4;
    const logits = Float32Array.from([1, 0, -1, 2]);
    const temperature = 0.8;
    const draws = 4000;
    const rows: RowSampling[] = Array.from({ length: draws }, (_, counter) => ({ temperature, seed: 123, counter }));
    const tiled = new Float32Array(draws * vocab);
    for (let r = 0; r < draws; r++) tiled.set(logits, r * vocab);
    const ids = await sampleOnGpu(tiled, rows, vocab);
    const counts = new Array(vocab).fill(0);
    for (const id of ids) counts[id]++;
    const z = logits.reduce((a, x) => a + Math.exp(x / temperature), 0);
    logits.forEach((x, i) => {
      const p = Math.exp(x / temperature) / z;
      const sigma = Math.sqrt((p * (1 - p)) / draws);
      expect(Math.abs(counts[i] / draws - p), `token ${i}`).toBeLessThan(5 * sigma);
    });
  });
});

describe('sampling controls against the CPU reference', () => {
  it.each(KERNEL_SHAPES)('ids, survivors and logprobs agree in a batch mixing greedy and sampled rows (vocab 3000, $name)', async (shape) => {
    useShapes(await getRuntime(), shape.software);
    const vocab = 3000;
    const count = 28;
    const logits = randomF32(count * vocab, 5, 4);
    const rows = mixedRows(logits, vocab, count);
    const refs = rows.map((r, i) => sampleRowReference(rowOf(logits, i, vocab), r));
    const gpu = await runSampling(logits, rows, vocab);
    expect(Array.from(gpu.ids)).toEqual(refs.map((r) => r.id));
    rows.forEach((_, i) => expectLogprobsClose(gpu.logprobs[i], refs[i].logprobs, `row ${i}`));

    const filtered = await filteredOnGpu(logits, rows, vocab);
    rows.forEach((r, i) => {
      const row = rowOf(filtered, i, vocab);
      expect(finiteIds(row), `row ${i} survivors`).toEqual(refs[i].survivors);
      const edited = editLogits(rowOf(logits, i, vocab), r);
      for (const id of refs[i].survivors) expect(Math.abs(row[id] - edited[id]), `row ${i} token ${id}`).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(edited[id])));
    });
    // The controls did something: top-k 50 keeps 50, top-p and min-p drop most of the vocabulary.
    expect(refs[3].survivors.length).toBe(50);
    expect(refs[5].survivors.length).toBeLessThan(vocab / 2);
    expect(refs[6].survivors.length).toBeLessThan(vocab / 2);
  });

  it.each(KERNEL_SHAPES)('agrees on a 32000-token vocabulary, every control at once ($name)', async (shape) => {
    useShapes(await getRuntime(), shape.software);
    const vocab = 32000;
    const logits = randomF32(2 * vocab, 17, 6);
    const top = largest(rowOf(logits, 0, vocab), 4);
    const rows: RowSampling[] = [
      {
        temperature: 0.9, seed: 5, counter: 12, topK: 40, topP: 0.9, minP: 0.01, logprobs: 20,
        repetitionPenalty: 1.1, frequencyPenalty: 0.3, presencePenalty: 0.2,
        promptTokens: new Set([top[0], 17, 31999]), outputCounts: new Map([[top[1], 2], [5, 1]]), logitBias: new Map([[top[2], 0.3], [0, -100]]),
      },
      { temperature: 0, seed: 0, counter: 0, logprobs: 4 },
    ];
    const refs = rows.map((r, i) => sampleRowReference(rowOf(logits, i, vocab), r));
    const gpu = await runSampling(logits, rows, vocab);
    expect(Array.from(gpu.ids)).toEqual(refs.map((r) => r.id));
    rows.forEach((_, i) => expectLogprobsClose(gpu.logprobs[i], refs[i].logprobs, `row ${i}`));
    const filtered = await filteredOnGpu(logits, rows, vocab);
    expect(finiteIds(rowOf(filtered, 0, vocab))).toEqual(refs[0].survivors);
    expect(refs[0].survivors.length).toBeGreaterThan(1);
    expect(refs[0].survivors.length).toBeLessThanOrEqual(40);
  });
});

describe('sampling distributions', () => {
  const LOGITS = Float32Array.from([2, 1.5, 1, 0.5, 0, -0.5, -1]);
  const DRAWS = 4000;

  /** Token frequencies over DRAWS draws (one row per draw, counters 0..DRAWS-1). */
  async function frequencies(logits: Float32Array, control: Omit<RowSampling, 'seed' | 'counter'>): Promise<number[]> {
    const vocab = logits.length;
    const rows: RowSampling[] = Array.from({ length: DRAWS }, (_, counter) => ({ ...control, seed: 77, counter }));
    const tiled = new Float32Array(DRAWS * vocab);
    for (let r = 0; r < DRAWS; r++) tiled.set(logits, r * vocab);
    const { ids } = await runSampling(tiled, rows, vocab);
    const counts = new Array<number>(vocab).fill(0);
    for (const id of ids) counts[id]++;
    return counts.map((c) => c / DRAWS);
  }

  /** softmax(logits / T) renormalized over `kept` (0 elsewhere). */
  function expected(logits: Float32Array, temperature: number, kept: number[]): number[] {
    const w = Array.from(logits, (l, i) => (kept.includes(i) ? Math.exp(l / temperature) : 0));
    const z = w.reduce((a, b) => a + b, 0);
    return w.map((x) => x / z);
  }

  function expectFrequencies(freq: number[], p: number[]): void {
    p.forEach((pi, i) => {
      if (pi === 0) {
        expect(freq[i], `token ${i} is never drawn`).toBe(0);
        return;
      }
      const sigma = Math.sqrt((pi * (1 - pi)) / DRAWS);
      expect(Math.abs(freq[i] - pi), `token ${i}`).toBeLessThan(5 * sigma);
    });
  }

  it('top_k draws only from the k largest, with renormalized frequencies', async () => {
    expectFrequencies(await frequencies(LOGITS, { temperature: 1, topK: 3 }), expected(LOGITS, 1, [0, 1, 2]));
  });

  it('top_p draws only from the smallest set reaching p', async () => {
    // softmax(LOGITS / 0.8): 0.471, 0.252, 0.135, ...; cumulative 0.471, 0.723 < 0.75 <= 0.858
    expectFrequencies(await frequencies(LOGITS, { temperature: 0.8, topP: 0.75 }), expected(LOGITS, 0.8, [0, 1, 2]));
  });

  it('min_p draws only tokens with p >= minP * max p', async () => {
    // p_i / p_max = exp(l_i - 2): 1, 0.61, 0.37, 0.22, 0.14 -> minP 0.2 keeps four
    expectFrequencies(await frequencies(LOGITS, { temperature: 1, minP: 0.2 }), expected(LOGITS, 1, [0, 1, 2, 3]));
  });

  it('min_p, top_k and top_p combine in that order', async () => {
    // min_p 0.1 keeps 0..4; top_k 4 keeps 0..3; top_p 0.85 over those (cumulative 0.455, 0.731, 0.899, 1) keeps 0..2
    expectFrequencies(await frequencies(LOGITS, { temperature: 1, minP: 0.1, topK: 4, topP: 0.85 }), expected(LOGITS, 1, [0, 1, 2]));
  });

  const TIED_K = Float32Array.from([3, 2, 2, 2, 1, 0]);
  // p: 0.447, 0.164 x3, 0.060: 0.447 < 0.6 <= 0.447 + 0.164, so the set ends among the ties: all three stay
  const TIED_P = Float32Array.from([2, 1, 1, 1, 0]);

  it('keeps every token tied at the top_k threshold, with renormalized frequencies', async () => {
    expectFrequencies(await frequencies(TIED_K, { temperature: 1, topK: 2 }), expected(TIED_K, 1, [0, 1, 2, 3]));
  });

  it.each(KERNEL_SHAPES)('the filter keeps every token tied at the top_k or top_p threshold ($name)', async (shape) => {
    useShapes(await getRuntime(), shape.software);
    const topK: RowSampling = { temperature: 1, seed: 0, counter: 0, topK: 2 };
    const topP: RowSampling = { temperature: 1, seed: 0, counter: 0, topP: 0.6 };
    expect(finiteIds(await filteredOnGpu(TIED_K, [topK], TIED_K.length))).toEqual([0, 1, 2, 3]);
    expect(finiteIds(await filteredOnGpu(TIED_P, [topP], TIED_P.length))).toEqual([0, 1, 2, 3]);
    expect(sampleRowReference(TIED_K, topK).survivors).toEqual([0, 1, 2, 3]);
    expect(sampleRowReference(TIED_P, topP).survivors).toEqual([0, 1, 2, 3]);
  });
});

describe('logit bias and penalties on greedy rows', () => {
  const greedyIds = async (logits: number[], controls: Array<Omit<RowSampling, 'seed' | 'counter'>>) => {
    const rows = controls.map((c) => ({ ...c, seed: 0, counter: 0 }));
    const tiled = new Float32Array(rows.length * logits.length);
    rows.forEach((_, r) => tiled.set(logits, r * logits.length));
    return Array.from((await runSampling(tiled, rows, logits.length)).ids);
  };

  it('penalties move the argmax exactly where the OpenAI / vLLM formulas put it', async () => {
    const logits = [2, 1.9, 1.5, -1, 0.5];
    const once = new Map([[0, 1]]);
    const twice = new Map([[0, 2]]);
    const controls: Array<Partial<RowSampling>> = [
      {}, // 2 > 1.9
      { presencePenalty: 0.2, outputCounts: once }, // 1.8 < 1.9
      { presencePenalty: 0.05, outputCounts: once }, // 1.95 > 1.9
      { frequencyPenalty: 0.06, outputCounts: twice }, // 1.88 < 1.9
      { frequencyPenalty: 0.06, outputCounts: once }, // 1.94 > 1.9
      { repetitionPenalty: 1.1, promptTokens: new Set([0]) }, // 2 / 1.1 = 1.82 < 1.9
      { repetitionPenalty: 1.1, outputCounts: once }, // generated tokens too
      { repetitionPenalty: 1.1, promptTokens: new Set([0, 1]) }, // 1.82 > 1.9 / 1.1 = 1.73
      { frequencyPenalty: 0.06, presencePenalty: 0.05, outputCounts: once, logitBias: new Map([[1, 0.05]]) }, // 1.89 < 1.95
    ];
    expect(await greedyIds(logits, controls.map((c) => ({ temperature: 0, ...c })))).toEqual([0, 1, 0, 1, 0, 1, 1, 0, 1]);
  });

  it('the repetition penalty multiplies negative logits', async () => {
    const logits = [-1, -1.05, -3];
    expect(await greedyIds(logits, [
      { temperature: 0 },
      { temperature: 0, repetitionPenalty: 1.1, promptTokens: new Set([0]) }, // -1.1 < -1.05
      { temperature: 0, repetitionPenalty: 1.1, promptTokens: new Set([1]) }, // -1.155: token 0 stays
    ])).toEqual([0, 1, 0]);
  });

  it('logit_bias -100 bans a token and +100 forces one, greedy and sampled', async () => {
    const vocab = 500;
    const logits = randomF32(vocab, 3, 4);
    const best = largest(logits, 2);
    const worst = largest(logits.map((x) => -x), 1)[0];
    const sampled = (bias: Map<number, number>) => Array.from({ length: 200 }, (_, counter) => ({ temperature: 1.5, seed: 9, counter, logitBias: bias }));
    const rows: RowSampling[] = [
      { temperature: 0, seed: 0, counter: 0, logitBias: new Map([[best[0], -100]]) },
      { temperature: 0, seed: 0, counter: 0, logitBias: new Map([[worst, 100]]) },
      ...sampled(new Map([[worst, 100]])),
      ...sampled(new Map([[best[0], -100], [best[1], -100]])),
    ];
    const tiled = new Float32Array(rows.length * vocab);
    rows.forEach((_, r) => tiled.set(logits, r * vocab));
    const ids = Array.from((await runSampling(tiled, rows, vocab)).ids);
    expect(ids.slice(0, 2)).toEqual([best[1], worst]);
    expect(ids.slice(2, 202).every((id) => id === worst)).toBe(true);
    const banned = ids.slice(202);
    expect(banned.some((id) => id === best[0] || id === best[1])).toBe(false);
    expect(new Set(banned).size).toBeGreaterThan(10);
  });
});

describe('logprobs through the model', () => {
  let m: LoadedModel | undefined;
  afterAll(() => m?.close());

  it('sampleWithLogprobs gives log_softmax of forward.logits, greedy and sampled rows alike', async () => {
    m = await loadShared('wg-tolstoy-q8_0.gguf', 16);
    const tokens = m.model.tokenizer.encode('Prince Andrew looked at the old count');
    const pages = m.kv.pool.allocate(Math.ceil(tokens.length / m.kv.pageSize));
    if (!pages) throw new Error('KV cache too small for the test');
    try {
      const n = tokens.length;
      const batch = prefillBatch(tokens, pages, m.kv.pageSize, [n - 4, n - 3, n - 2, n - 1]);
      const vocab = m.model.config.vocabSize;
      const logits = await m.forward.logits(batch, m.kv);
      const rows: RowSampling[] = [
        { temperature: 0, seed: 0, counter: 0, logprobs: 5 },
        { temperature: 0, seed: 0, counter: 0 },
        { temperature: 0, seed: 0, counter: 0, logprobs: 20, repetitionPenalty: 1.5, promptTokens: new Set(tokens) },
        { temperature: 1, seed: 3, counter: 1, logprobs: 2, topK: 5 },
      ];
      const { ids, logprobs } = await m.forward.sampleWithLogprobs(batch, m.kv, rows);
      const raw = (r: number) => rowOf(logits, r, vocab);
      expect(ids[0]).toBe(largest(raw(0), 1)[0]);
      expect(largest(raw(3), 5)).toContain(ids[3]);
      expect(logprobs[1]).toBeNull();
      for (const r of [0, 2, 3]) expectLogprobsClose(logprobs[r], logprobsReference(raw(r), ids[r], rows[r].logprobs!), `row ${r}`);
      expect(Array.from(await m.forward.sample(batch, m.kv, rows))).toEqual(Array.from(ids));
    } finally {
      m.kv.pool.release(pages);
    }
  });
});
