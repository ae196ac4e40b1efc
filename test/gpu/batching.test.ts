// One batch of different prompts gives exactly the tokens each prompt gives alone, also when
// prefill chunks are cut by a small token budget; pages all come back to the pool.
import { afterAll, describe, expect, it } from 'vitest';
import { generate } from '../../src/engine/generate.js';
import { KvCache } from '../../src/kv/index.js';
import { greedy, loadShared, prefillBatch, type LoadedModel } from '../helpers/model.js';

const PROMPTS = [
  'Prince Andrew looked at',
  'The old count',
  'Natasha ran into the drawing room and, without saying a word to anyone, sat down at the piano',
  'War',
];

describe.each(['wg-tolstoy-q8_0.gguf', 'wg-llama-spm-q4_k_m.gguf'])('batching on %s', (file) => {
  let m: LoadedModel;
  afterAll(() => m?.close());

  it('4 different prompts in one batch give the tokens each gives alone', async () => {
    m = await loadShared(file, 64);
    const prompts = PROMPTS.map((p) => m.model.tokenizer.encode(p));
    const alone: number[][] = [];
    for (const p of prompts) alone.push((await greedy(m, [p], 12))[0]);
    const together = await greedy(m, prompts, 12);
    expect(together).toEqual(alone);
    expect(m.kv.pool.usedPages).toBe(0);
    m.kv.pool.checkInvariants();
  });

  it('a step is one GPU submission, also when it is the largest yet and buffers grow first', async () => {
    const rt = m.model.rt;
    const vocab = m.model.config.vocabSize;
    // A long prompt (more rows than any step so far), then one decode step.
    const tokens = Array.from({ length: 120 }, (_, i) => 3 + ((i * 37) % (vocab - 3)));
    const pages = m.kv.pool.allocate(Math.ceil((tokens.length + 1) / m.kv.pageSize))!;
    try {
      const before = rt.submissions;
      await m.forward.sample(prefillBatch(tokens, pages, m.kv.pageSize, [tokens.length - 1]), m.kv);
      expect(rt.submissions - before, 'prefill step').toBe(1);
      const p = tokens.length;
      const decode = prefillBatch([...tokens, 5], pages, m.kv.pageSize, [0]);
      const one = { ...decode, tokenIds: Int32Array.from([5]), positions: Int32Array.from([p]), seqStarts: Int32Array.from([0, 1]), slotMapping: decode.slotMapping.slice(p), sampleRows: Int32Array.from([0]) };
      const mid = rt.submissions;
      await m.forward.sample(one, m.kv);
      expect(rt.submissions - mid, 'decode step').toBe(1);
    } finally {
      m.kv.pool.release(pages);
    }
  });

  it('chunked prefill (8-token budget) gives the same tokens', async () => {
    const prompts = PROMPTS.map((p) => m.model.tokenizer.encode(p));
    const reference = await greedy(m, prompts, 6);
    const chunked = await generate(m.forward, m.kv, prompts.map((promptIds) => ({ promptIds, maxTokens: 6 })), {
      contextLength: m.model.config.contextLength,
      maxBatchTokens: 8,
    });
    expect(chunked.map((r) => r.tokens)).toEqual(reference);
  });

  it('a page pool too small for all at once preempts and recomputes, with unchanged output', async () => {
    const prompts = PROMPTS.map((p) => m.model.tokenizer.encode(p));
    const reference = await greedy(m, prompts, 12);
    const needed = prompts.reduce((a, p) => a + Math.ceil((p.length + 12) / m.kv.pageSize), 0);
    const small = KvCache.create(m.model.rt, m.model.config, { maxPages: Math.ceil(needed / 2) + 1, memoryBytes: 1 << 30, format: 'f16' });
    try {
      const out = await generate(m.forward, small, prompts.map((promptIds) => ({ promptIds, maxTokens: 12 })), { contextLength: m.model.config.contextLength });
      expect(out.map((r) => r.tokens)).toEqual(reference);
      expect(out.reduce((a, r) => a + r.preemptions, 0)).toBeGreaterThan(0);
      expect(small.pool.usedPages).toBe(0);
      small.pool.checkInvariants();
    } finally {
      small.destroy();
    }
  });

  it('seeded temperature sampling is reproducible alone and batched, and differs by seed', async () => {
    const prompt = m.model.tokenizer.encode(PROMPTS[0]);
    const run = async (seeds: number[]) => (await generate(m.forward, m.kv,
      seeds.map((seed) => ({ promptIds: prompt, maxTokens: 10, temperature: 1.0, seed })),
      { contextLength: m.model.config.contextLength })).map((r) => r.tokens);
    const [a] = await run([7]);
    const [b, , c] = await run([7, 8, 9]);
    expect(b).toEqual(a);
    expect(c).not.toEqual(a);
    expect(m.kv.pool.usedPages).toBe(0);
  });
});
