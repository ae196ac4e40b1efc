// Fidelity of the quantized KV formats: for every shared model and every golden prompt, greedy
// tokens with q8_0 (and q4_0) KV against those with f16 KV, up to f16's first near tie (top-2
// probabilities within 1%).
//
// What is asserted: at least 95% of the q8_0 cases agree that far on STABLE_MODELS, the
// float-weight models and the trained shipped model (the models goldens.test.ts holds the fast set
// to near-tie agreement on; llama-2-tiny-random has head dimension 4, which q8_0 refuses). On the
// random-weight models with quantized weights (their matmuls round activations to Q8_0 / Q8_K
// blocks, so a tiny change of an input can move a rounding step) even f32 KV, which is more exact
// than f16, agrees with f16 in only 25 of 36 cases (spm-q8_0 3/9, spm-q4_0 6/9, llama3-bpe 7/9,
// spm-q4_k_m 9/9), diverging at top-2 gaps up to 11%; q8_0 there: 20/36 (spm-q4_k_m 3/9 is a
// real shortfall). WGSERVE_KV_FIDELITY=all reports every model and format with the f32
// calibration; the numbers are in docs/DESIGN.md.
//
// f16's greedy continuation is generated free-running (all cases batched); then both formats are
// teacher-forced on prompt + that continuation in one prefill each, with logits at every
// generated position. The fast kernel set is batch invariant, so f16's argmax along the forced
// sequence is its greedy choice, and the quantized run's greedy output equals f16's up to the
// first position where its argmax differs (the inputs are identical until then).
import { afterAll, describe, expect, it } from 'vitest';
import { KvCache } from '../../src/kv/index.js';
import type { Batch } from '../../src/model/index.js';
import { greedy, loadShared, type LoadedModel } from '../helpers/model.js';
import { golden, GOLDEN_MODELS } from '../helpers/shared.js';

const N = 32;

interface Variant {
  name: string;
  format: 'f32' | 'q8_0' | 'q4_0';
  /** Share of all cases that must agree up to f16's near tie (0: reported only). */
  required: number;
}

const ALL_VARIANTS: Variant[] = [
  // Calibration: how far f32 KV (more exact than f16) agrees with f16 by the same measure.
  { name: 'f32', format: 'f32', required: 0 },
  { name: 'q8_0', format: 'q8_0', required: 0.95 },
  { name: 'q4_0', format: 'q4_0', required: 0 },
];
const ALL = process.env.WGSERVE_KV_FIDELITY === 'all';
// CI checks q8_0 on the stable models; WGSERVE_KV_FIDELITY=all reports every variant on every model (slower).
const VARIANTS = ALL ? ALL_VARIANTS : ALL_VARIANTS.filter((v) => v.format === 'q8_0');

/** The float-weight models and the trained shipped model (f32 KV agrees with f16 KV on 32/34 of their cases). */
const STABLE_MODELS = new Set(['wg-llama-spm-f32.gguf', 'wg-llama-spm-f16.gguf', 'wg-tolstoy-f32.gguf', 'wg-tolstoy-q8_0.gguf']);

interface CaseResult {
  /** Positions (of N) over which the quantized run's greedy tokens equal f16's. */
  matched: number;
  /** f16's first near tie (or N). */
  tie: number;
  /** f16's top-2 gap (1 - p2 / p1) where the quantized run chose another token (1 if it never did). */
  gapAtDivergence: number;
}

const results = new Map<string, CaseResult[]>(VARIANTS.map((v) => [v.name, []]));
const report: string[] = ['KV format | model | cases agreeing up to f16 near tie | all 32 identical | mean agreeing positions | mean f16 near-tie horizon | f16 top-2 gaps where cases diverged before the tie'];
afterAll(() => {
  for (const { name } of VARIANTS) {
    const r = results.get(name)!;
    const agreeing = r.filter((c) => c.matched >= c.tie).length;
    report.push(`${name} | the stable models | ${agreeing}/${r.length} (${((100 * agreeing) / Math.max(1, r.length)).toFixed(1)}%)`);
  }
  console.log(report.join('\n'));
});

/** argmax and whether the top two probabilities are within 1% of each other, per position. */
interface Choice {
  id: number;
  nearTie: boolean;
  /** 1 - p2 / p1 of the top two. */
  gap: number;
}

const NEAR_TIE_LOGPROB = -Math.log(0.99);
/** Tokens per forced step (several cases in one batch: the fast set computes the same bits). */
const STEP_TOKENS = 512;

/**
 * Greedy choices at every position from each prompt's last token on, teacher-forced on
 * prompt + forced tokens: cases batched into steps of at most STEP_TOKENS tokens.
 */
async function forcedChoices(m: LoadedModel, kv: KvCache, prompts: number[][], forced: number[][]): Promise<Choice[][]> {
  const out: Choice[][] = [];
  let first = 0;
  while (first < prompts.length) {
    let last = first + 1;
    let tokens = prompts[first].length + forced[first].length;
    while (last < prompts.length && tokens + prompts[last].length + forced[last].length <= STEP_TOKENS) tokens += prompts[last].length + forced[last++].length;
    out.push(...(await forcedStep(m, kv, prompts.slice(first, last), forced.slice(first, last))));
    first = last;
  }
  return out;
}

async function forcedStep(m: LoadedModel, kv: KvCache, prompts: number[][], forced: number[][]): Promise<Choice[][]> {
  const seqs = prompts.map((p, i) => [...p, ...forced[i]]);
  const pages = seqs.map((t) => kv.pool.allocate(Math.ceil(t.length / kv.pageSize)));
  try {
    const maxBlocks = Math.max(...pages.map((p) => p!.length));
    const batch: Batch = {
      tokenIds: Int32Array.from(seqs.flat()),
      positions: Int32Array.from(seqs.flatMap((t) => t.map((_, i) => i))),
      seqStarts: Int32Array.from([0, ...seqs.map((_, s) => seqs.slice(0, s + 1).reduce((n, t) => n + t.length, 0))]),
      contextLens: Int32Array.from(seqs.map((t) => t.length)),
      blockTables: Int32Array.from(pages.flatMap((p) => [...p!, ...new Array(maxBlocks - p!.length).fill(-1)])),
      maxBlocksPerSeq: maxBlocks,
      slotMapping: Int32Array.from(seqs.flatMap((t, s) => t.map((_, i) => pages[s]![Math.floor(i / kv.pageSize)] * kv.pageSize + (i % kv.pageSize)))),
      sampleRows: Int32Array.from([]),
    };
    const rows: number[] = [];
    let start = 0;
    seqs.forEach((t, s) => {
      for (let i = prompts[s].length - 1; i < t.length; i++) rows.push(start + i);
      start += t.length;
    });
    batch.sampleRows = Int32Array.from(rows);
    // The sampled token and the two most likely (its own logprob plus 2 alternatives).
    const sampling = rows.map(() => ({ temperature: 0, seed: 0, counter: 0, logprobs: 2 }));
    const { ids, logprobs } = await m.forward.sampleWithLogprobs(batch, kv, sampling);
    const choices = rows.map((_, r) => {
      const [a, b] = logprobs[r]!.top;
      if (b === undefined) throw new Error('forced step: fewer than 2 top logprobs');
      return { id: ids[r], nearTie: a.logprob - b.logprob <= NEAR_TIE_LOGPROB, gap: 1 - Math.exp(b.logprob - a.logprob) };
    });
    const out: Choice[][] = [];
    for (const f of forced) out.push(choices.splice(0, f.length + 1));
    return out;
  } finally {
    for (const p of pages) if (p) kv.pool.release(p);
  }
}

// WGSERVE_KV_FIDELITY_MODELS=a.gguf,b.gguf: only those models (for investigating one).
const MODELS = process.env.WGSERVE_KV_FIDELITY_MODELS?.split(',') ?? (ALL ? GOLDEN_MODELS : [...STABLE_MODELS]);

describe.each(MODELS)('%s: quantized KV against f16 KV', (file) => {
  let m: LoadedModel;
  const kvs = new Map<string, KvCache>();
  afterAll(() => {
    for (const kv of kvs.values()) kv.destroy();
    m?.close();
  });

  it('greedy tokens agree up to f16\'s first near tie', async () => {
    const tLoad = performance.now();
    m = await loadShared(file, 128);
    const { config } = m.model;
    const cases = golden(file).cases;
    if (config.headDim % 32 !== 0) {
      // llama.cpp refuses these formats too: its blocks of 32 must divide the rows.
      expect(() => KvCache.create(m.model.rt, config, { format: 'q8_0', maxPages: 4 })).toThrow(/multiple of 32/);
      report.push(`q8_0, q4_0 | ${file} | not applicable: head dimension ${config.headDim} has no blocks of 32 (refused with an error)`);
      return;
    }
    for (const v of VARIANTS) kvs.set(v.name, KvCache.create(m.model.rt, config, { format: v.format, maxPages: 128, memoryBytes: 1 << 30 }));
    const prompts = cases.map((c) => c.prompt_tokens);
    const t0 = performance.now();
    const continuations = await greedy(m, prompts, N);
    const t1 = performance.now();
    const forced = continuations.map((t) => t.slice(0, N - 1));
    const f16 = await forcedChoices(m, m.kv, prompts, forced);
    const t2 = performance.now();
    const perFormat = new Map(VARIANTS.map((v) => [v.name, [] as CaseResult[]]));
    for (const { name } of VARIANTS) {
      const q = await forcedChoices(m, kvs.get(name)!, prompts, forced);
      cases.forEach((_, i) => {
        // Batch invariance: the forced run's argmax is the free-running greedy choice.
        expect(f16[i].map((c) => c.id), `${file} case ${i}: f16 teacher-forced vs free-running`).toEqual(continuations[i]);
        const tie = f16[i].findIndex((c) => c.nearTie);
        const diverged = q[i].findIndex((c, pos) => c.id !== continuations[i][pos]);
        perFormat.get(name)!.push({ matched: diverged < 0 ? N : diverged, tie: tie < 0 ? N : tie, gapAtDivergence: diverged < 0 ? 1 : f16[i][diverged].gap });
      });
    }
    report.push(`(${file}: load ${(t0 - tLoad) / 1000 | 0} s, greedy ${(t1 - t0) / 1000 | 0} s, f16 forced ${(t2 - t1) / 1000 | 0} s, quantized forced ${(performance.now() - t2) / 1000 | 0} s)`);
    for (const { name } of VARIANTS) {
      const r = perFormat.get(name)!;
      if (STABLE_MODELS.has(file)) results.get(name)!.push(...r);
      const agreeing = r.filter((c) => c.matched >= c.tie).length;
      const mean = r.reduce((s, c) => s + c.matched, 0) / r.length;
      const horizon = r.reduce((n, c) => n + c.tie, 0) / r.length;
      const gaps = r.filter((c) => c.matched < c.tie).map((c) => `${(100 * c.gapAtDivergence).toFixed(1)}%`).join(' ');
      report.push(`${name} | ${file} | ${agreeing}/${r.length} | ${r.filter((c) => c.matched === N).length}/${r.length} | ${mean.toFixed(1)}/${N} | ${horizon.toFixed(1)} | ${gaps}`);
    }
  }, 600_000);
});

describe('the stable models together', () => {
  it.each(VARIANTS)('$name agrees with f16 up to its near tie in enough cases', ({ name, required }) => {
    const r = results.get(name)!;
    expect(r.length).toBeGreaterThan(0);
    const agreeing = r.filter((c) => c.matched >= c.tie).length;
    expect(agreeing / r.length).toBeGreaterThanOrEqual(required);
  });
});
