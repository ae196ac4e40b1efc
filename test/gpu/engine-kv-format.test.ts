// The engine with a compressed KV cache (kvFormat q8_0 / q4_0) on the shipped model: the same
// memory holds proportionally more pages, greedy chat equals the f16 engine's (q8_0; the
// shipped model agrees on every golden case, test/gpu/kv-fidelity.test.ts), and options that
// cannot work are refused with errors that name them.
import { afterAll, describe, expect, it } from 'vitest';
import type { Engine } from '../../src/index.js';
import { shippedEngine } from '../helpers/engine.js';

const MEMORY = 4 * 2 ** 20;
const request = { messages: [{ role: 'user' as const, content: 'Prince Andrew looked at' }], temperature: 0, max_tokens: 24 };

describe('engine kvFormat', () => {
  const engines: Engine[] = [];
  afterAll(async () => {
    for (const e of engines) await e.destroy();
  });

  it('q8_0 and q4_0 hold 1.88x and 3.56x the pages of f16 in the same memory; q8_0 answers as f16 does', async () => {
    const make = async (kvFormat: 'f16' | 'q8_0' | 'q4_0') => {
      const e = await shippedEngine({ kvFormat, kvMemoryBytes: MEMORY });
      engines.push(e);
      return e;
    };
    const [f16, q8, q4] = [await make('f16'), await make('q8_0'), await make('q4_0')];
    const pages = (e: Engine) => e.core!.kv.layout.numPages;
    expect(pages(q8) / pages(f16)).toBeCloseTo(64 / 34, 1);
    expect(pages(q4) / pages(f16)).toBeCloseTo(64 / 18, 1);
    expect(q8.core!.kv.bytes).toBeLessThanOrEqual(MEMORY);
    // Greedy tokens agree up to f16's first near tie (top-2 probabilities within 1%).
    const tokens = async (e: Engine) => (await e.chat.completions.create({ ...request, logprobs: true, top_logprobs: 2 })).choices[0].logprobs!.content!;
    const want = await tokens(f16);
    const got = await tokens(q8);
    const tie = want.findIndex((t) => t.top_logprobs.length > 1 && Math.exp(t.top_logprobs[1].logprob - t.top_logprobs[0].logprob) >= 0.99);
    const horizon = tie < 0 ? want.length : tie;
    expect(horizon).toBeGreaterThan(0);
    const gaps = want.map((t) => (1 - Math.exp(t.top_logprobs[1].logprob - t.top_logprobs[0].logprob)).toFixed(3));
    expect(got.slice(0, horizon).map((t) => t.token), `f16 top-2 gaps ${gaps.join(' ')}`).toEqual(want.slice(0, horizon).map((t) => t.token));
    // The prefix cache shares q8_0 pages as it shares f16 ones (copy-on-write copies whole quantized pages).
    const long = { ...request, messages: [{ role: 'user' as const, content: 'Prince Andrew looked at the old count, who was sitting by the window and reading a letter from Moscow about the war.' }] };
    const first = await q8.chat.completions.create(long);
    const again = await q8.chat.completions.create(long);
    expect(again.usage.prompt_tokens_details?.cached_tokens).toBeGreaterThanOrEqual(16);
    expect(again.choices[0].message.content).toBe(first.choices[0].message.content);
    // q4_0 is lossier (see DESIGN); it must still produce a whole answer.
    const r = await q4.chat.completions.create(request);
    expect(r.usage.completion_tokens).toBe(24);
  });

  it('refuses a quantized format with the llama.cpp kernel set, and an unknown format', async () => {
    await expect(shippedEngine({ kvFormat: 'q8_0', numerics: 'llama.cpp', kvMemoryBytes: MEMORY })).rejects.toThrow(/kvFormat q8_0 needs numerics 'fast'/);
    await expect(shippedEngine({ kvFormat: 'q5_1' as never, kvMemoryBytes: MEMORY })).rejects.toThrow(/KV format 'q5_1' is not one of f32, f16, q8_0, q4_0/);
  });
});
