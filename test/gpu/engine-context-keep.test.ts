// engine.contexts.keep (issue 14), on the shipped model in Node (directory store): keeping a
// context computes and writes every full page of it; under a byte budget the store then evicts
// every other record first, an engine opened afresh on the directory still knows the keep, and
// restores the context (cached_tokens, no prefill of it); release() gives the records back to
// LRU. A context whose pages GPU memory caches is written from there without computing; one
// that cannot fit the budget is refused and not kept; bad input is a 400.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { prometheusText } from '../../src/engine/index.js';
import type { Engine, EngineOptions } from '../../src/index.js';
import { shippedEngine } from '../helpers/engine.js';
import { parsePrometheus, promValue } from '../helpers/prometheus.js';

const PAGE = 16;
const MEMORY = 4 * 2 ** 20;

/** `n` token ids of a made-up text, different for each seed. */
const ids = (seed: number, n: number) => Array.from({ length: n }, (_, i) => 3 + ((i * 31 + seed * 977) % 250));

describe('engine.contexts.keep (directory store)', () => {
  const dirs: string[] = [];
  const engines: Engine[] = [];
  const open = async (dir: string, maxBytes: number, options: EngineOptions = {}) => {
    const e = await shippedEngine({ kvMemoryBytes: MEMORY, contextStore: { kind: 'directory', path: dir, maxBytes }, ...options });
    engines.push(e);
    return e;
  };
  const close = async (e: Engine) => {
    await e.destroy();
    engines.splice(engines.indexOf(e), 1);
  };
  const tempDir = async () => {
    const d = await mkdtemp(join(tmpdir(), 'wgserve-keep-'));
    dirs.push(d);
    return d;
  };
  const complete = (e: Engine, prompt: number[]) => e.completions.create({ prompt, max_tokens: 2, temperature: 0 });
  const settle = (e: Engine) => e.core!.tier!.drain();

  afterAll(async () => {
    for (const e of engines) await e.destroy();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('a kept context is computed and written, outlives the budget and a restart, and is restored; release gives it back to LRU', async () => {
    const dir = await tempDir();
    const context = ids(1, 5 * PAGE + 7);
    let engine = await open(dir, 2 ** 30);
    const kept = await engine.contexts.keep({ prompt: context });
    expect(kept.tokens).toBe(5 * PAGE);
    expect(kept.keys).toHaveLength(5);
    expect(kept.id).toBe(kept.keys[4]);
    let usage = (await engine.contexts.usage())!;
    expect(usage).toMatchObject({ records: 5, pagesWritten: 5, keptContexts: 1 });
    const record = usage.bytes / usage.records;
    await close(engine);

    // A budget of the kept context and 3 more records: other traffic evicts only the others.
    const budget = Math.ceil(record * 8.5);
    engine = await open(dir, budget);
    expect(await engine.contexts.kept()).toEqual([kept]);
    for (const seed of [2, 3, 4]) await complete(engine, ids(seed, 4 * PAGE + 1));
    await settle(engine);
    usage = (await engine.contexts.usage())!;
    expect(usage.recordsEvicted).toBeGreaterThan(0);
    expect(usage.bytes).toBeLessThanOrEqual(budget);
    const listed = await engine.contexts.list();
    expect(listed.filter((r) => r.kept).map((r) => r.key).sort()).toEqual([...kept.keys].sort());
    const prom = parsePrometheus(prometheusText(engine.metrics(), engine.modelId!));
    expect(promValue(prom, 'wgserve_context_store_kept_contexts')).toBe(1);
    expect(promValue(prom, 'wgserve_context_store_kept_bytes')).toBe(listed.filter((r) => r.kept).reduce((n, r) => n + r.bytes, 0));
    await close(engine);

    // Restarted: the context (and more) restores its kept pages instead of computing them.
    engine = await open(dir, budget);
    const reply = await complete(engine, [...context, 9, 10, 11]);
    expect(reply.usage!.prompt_tokens_details?.cached_tokens).toBe(5 * PAGE);
    expect((await engine.contexts.usage())!).toMatchObject({ restores: 1, pagesRestored: 5 });

    expect(await engine.contexts.release(kept.id)).toBe(true);
    expect(await engine.contexts.release(kept.id)).toBe(false);
    expect(await engine.contexts.kept()).toEqual([]);
    for (const seed of [5, 6, 7]) await complete(engine, ids(seed, 4 * PAGE + 1));
    await settle(engine);
    const left = new Set((await engine.contexts.list()).map((r) => r.key));
    expect(kept.keys.some((k) => !left.has(k))).toBe(true);
    await close(engine);
  });

  it('writes the pages GPU memory caches without computing them, and refuses a context larger than the budget', async () => {
    const dir = await tempDir();
    const context = ids(11, 4 * PAGE + 1);
    const engine = await open(dir, 2 ** 30);
    await complete(engine, context);
    await settle(engine);
    // The store loses the context's records; GPU memory still caches its pages.
    await engine.contexts.clear();
    expect((await engine.contexts.usage())!.records).toBe(0);
    const queried = engine.core!.kvManager.stats.queryTokens;
    const kept = await engine.contexts.keep({ prompt: context });
    expect(engine.core!.kvManager.stats.queryTokens).toBe(queried);
    expect(kept.keys).toHaveLength(4);
    expect((await engine.contexts.usage())!).toMatchObject({ records: 4, keptContexts: 1 });
    // Kept again: nothing to write, the same id.
    expect((await engine.contexts.keep({ prompt: context })).id).toBe(kept.id);
    expect((await engine.contexts.usage())!).toMatchObject({ records: 4, keptContexts: 1 });
    await close(engine);

    const small = await open(await tempDir(), 2000);
    await expect(small.contexts.keep({ prompt: context })).rejects.toThrow(/4 of 4 pages of the context could not be stored: the byte budget/);
    expect(await small.contexts.kept()).toEqual([]);
    await expect(small.contexts.keep({ prompt: context.slice(0, PAGE - 1) })).rejects.toMatchObject({ status: 400, param: 'prompt' });
    await expect(small.contexts.keep({ prompt: 'x', messages: [] } as never)).rejects.toMatchObject({ status: 400 });
    await close(small);
  });

  it('keeps a conversation as its next turn renders it, under its cache_salt', async () => {
    const dir = await tempDir();
    const engine = await open(dir, 2 ** 30);
    const history = [
      { role: 'user' as const, content: 'Prince Andrew looked at the old count and said nothing for a long while' },
      { role: 'assistant' as const, content: 'The old count smiled and went on with his story about the hunt' },
    ];
    const kept = await engine.contexts.keep({ messages: history, cache_salt: 'user-7' });
    expect(kept.tokens).toBeGreaterThanOrEqual(2 * PAGE);
    await close(engine);
    const again = await open(dir, 2 ** 30);
    const next = await again.chat.completions.create({ messages: [...history, { role: 'user', content: 'And then?' }], cache_salt: 'user-7', max_tokens: 2, temperature: 0 });
    expect(next.usage!.prompt_tokens_details?.cached_tokens).toBe(kept.tokens);
    // Another salt shares nothing.
    const other = await again.chat.completions.create({ messages: [...history, { role: 'user', content: 'And then?' }], max_tokens: 2, temperature: 0 });
    expect(other.usage!.prompt_tokens_details?.cached_tokens ?? 0).toBe(0);
    await close(again);
  });
});
