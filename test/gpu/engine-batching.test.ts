// Correctness under continuous batching, through the engine's step loop: requests arriving at
// different steps, of different lengths, give token for token what each gives alone; seeded
// sampling does not depend on the batch; a pool too small for all of them preempts, recomputes,
// and changes nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine, EngineCore, SamplingParams } from '../../src/engine/index.js';
import { drain, samplingParams, shippedEngine, type Drained } from '../helpers/engine.js';

const WORDS = 'Prince Andrew looked at the old count and Natasha ran into the drawing room without saying a word to anyone'.split(' ');

/** 16 prompts of 1 to 20 words, each with its own max_tokens (3 to 24). */
function workload(core: EngineCore): { prompt: number[]; params: SamplingParams }[] {
  return Array.from({ length: 16 }, (_, i) => ({
    prompt: core.model.tokenizer.encode(WORDS.slice(i % 5, i % 5 + 1 + ((i * 7) % 20)).join(' ')),
    params: samplingParams({ maxTokens: 3 + ((i * 5) % 22) }),
  }));
}

/** Each request alone: submitted when the previous one has finished. */
async function alone(core: EngineCore, requests: { prompt: number[]; params: SamplingParams }[]): Promise<Drained[]> {
  const out: Drained[] = [];
  for (const r of requests) out.push(await drain(core.submit(r.prompt, r.params)));
  return out;
}

/** Request i + 1 arrives once request i has streamed 1 to 3 tokens: every step has a different mix. */
async function staggered(core: EngineCore, requests: { prompt: number[]; params: SamplingParams }[]): Promise<Drained[]> {
  const results: Promise<Drained>[] = [];
  for (const [i, r] of requests.entries()) {
    const wanted = Math.min(1 + (i % 3), r.params.maxTokens);
    let arrived!: () => void;
    const ready = new Promise<void>((resolve) => (arrived = resolve));
    results.push(drain(core.submit(r.prompt, r.params), (count) => count >= wanted && arrived()).finally(() => arrived()));
    await ready;
  }
  return Promise.all(results);
}

describe('continuous batching through the engine', () => {
  let engine: Engine;
  let core: EngineCore;
  let requests: { prompt: number[]; params: SamplingParams }[];
  let reference: Drained[];
  beforeAll(async () => {
    engine = await shippedEngine();
    core = engine.core!;
    requests = workload(core);
    reference = await alone(core, requests);
  });
  afterAll(() => engine?.destroy());

  it('16 requests arriving at different steps give exactly what each gives alone', async () => {
    const stepsBefore = core.metrics.snapshot().steps;
    const batched = await staggered(core, requests);
    expect(batched.map((r) => r.tokens)).toEqual(reference.map((r) => r.tokens));
    expect(batched.map((r) => r.text)).toEqual(reference.map((r) => r.text));
    // Batched means fewer steps than tokens: sequences really shared steps.
    const steps = core.metrics.snapshot().steps - stepsBefore;
    const tokens = reference.reduce((a, r) => a + r.tokens.length, 0);
    expect(steps).toBeLessThan(tokens / 2);
    expect(reference.every((r, i) => r.tokens.length === requests[i].params.maxTokens || r.reason === 'stop')).toBe(true);
    expect(core.kv.pool.usedPages).toBe(0);
    core.scheduler.checkInvariants();
  });

  it('seeded sampling gives the same tokens alone and in a batch of others', async () => {
    const prompt = core.model.tokenizer.encode('Prince Andrew looked at');
    const sampled = (seed: number) => samplingParams({ maxTokens: 12, temperature: 0.9, topK: 40, topP: 0.95, seed });
    const [a] = await alone(core, [{ prompt, params: sampled(5) }]);
    const mixed = await staggered(core, [
      { prompt: core.model.tokenizer.encode('The old count'), params: sampled(1) },
      { prompt, params: sampled(5) },
      { prompt, params: samplingParams({ maxTokens: 12 }) },
      { prompt, params: sampled(6) },
    ]);
    expect(mixed[1].tokens).toEqual(a.tokens);
    expect(mixed[3].tokens).not.toEqual(a.tokens);
    expect(core.kv.pool.usedPages).toBe(0);
  });

  it('a pool too small for the workload preempts, recomputes, and outputs are unchanged', async () => {
    // 24 pages: room for about a third of the workload at once.
    const pageBytes = core.kv.bytes / core.kv.pool.totalPages;
    const tight = await shippedEngine({ kvMemoryBytes: pageBytes * 24, pageSize: 16 });
    try {
      const tc = tight.core!;
      const results = await Promise.all(requests.map((r) => drain(tc.submit(r.prompt, r.params))));
      expect(results.map((r) => r.tokens)).toEqual(reference.map((r) => r.tokens));
      expect(tc.metrics.snapshot().requests).toBe(16);
      expect(tc.metrics.snapshot().preemptions).toBeGreaterThan(0);
      expect(tc.kv.pool.usedPages).toBe(0);
      tc.scheduler.checkInvariants();
    } finally {
      await tight.destroy();
    }
  });
});
