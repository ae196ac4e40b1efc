// The prefix cache through the engine, on shared models: greedy outputs token for token the same
// with the cache on and off; agents with one system prompt and multi-turn histories get exactly
// the cached tokens a perfect page-aligned cache gives; salts isolate; n > 1 choices share the
// prompt's pages (copy-on-write on the GPU); a small pool evicts and preempts and still agrees;
// aborts of sequences holding shared pages keep the pool consistent.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EngineCore, SamplingParams, SeqHandle } from '../../src/engine/index.js';
import { ApiError, createEngine, type Completion, type Engine, type EngineOptions } from '../../src/index.js';
import { drain, samplingParams, type Drained } from '../helpers/engine.js';
import { getRuntime } from '../helpers/gpu.js';
import { GOLDEN_MODELS, modelPath } from '../helpers/shared.js';

const PAGE = 16;
const SYSTEM = 'You are a careful assistant. You answer in short sentences and use the tools below when they help.';
const TOOLS = 'Tools: search(query) finds passages in the book; count(word) counts a word; ask(name) asks a character.';
const TURN_TEXT = ['Prince Andrew looked at', 'Natasha ran into the room', 'The old count said', 'Pierre was glad'];

/**
 * Engines run the default numerics ('fast'), whose kernels reduce in an order no batch shape
 * changes, so a cache hit (the prompt's tail computed as a chunk after cached pages) computes the
 * same bits as a full prefill. ('llama.cpp' numerics reproduce llama.cpp's shape-dependent
 * kernels: there a chunked prefill moves logprobs, with or without the cache.)
 */
async function engineFor(file: string, options: EngineOptions = {}): Promise<Engine> {
  return createEngine({ model: modelPath(file), runtime: await getRuntime(), ...options });
}

/** Tokens a perfect page-aligned cache skips for `prompt`, given the token runs computed before. */
function perfectHit(prompt: readonly number[], computed: readonly (readonly number[])[]): number {
  let best = 0;
  for (const c of computed) {
    let n = 0;
    while (n < c.length && n < prompt.length && c[n] === prompt[n]) n++;
    best = Math.max(best, n);
  }
  return Math.floor(Math.min(best, prompt.length - 1) / PAGE) * PAGE;
}

/** The tokens whose K/V a finished sequence computed: all but the last sampled token, unless it stopped on a stop id. */
function computedTokens(prompt: readonly number[], out: Drained): number[] {
  const all = [...prompt, ...out.tokens];
  return out.reason === 'stop' ? all : all.slice(0, -1);
}

/** The logprobs (sampled token and the top 3) of every token of a sequence, as numbers. */
async function drainLogprobs(handle: SeqHandle): Promise<{ out: Drained; logprobs: number[][] }> {
  const out: Drained = { tokens: [], text: '', reason: '' };
  const logprobs: number[][] = [];
  for await (const e of handle.events) {
    out.text += e.text;
    if (e.type === 'finish') out.reason = e.reason;
    else {
      out.tokens.push(e.tokenId);
      logprobs.push([e.logprobs!.logprob, ...e.logprobs!.top.map((t) => t.logprob)]);
    }
  }
  return { out, logprobs };
}

function checkPool(core: EngineCore): void {
  expect(core.kv.pool.usedPages).toBe(0);
  expect(core.kv.pool.freePages + core.kv.pool.cachedPages).toBe(core.kv.pool.totalPages);
  core.scheduler.checkInvariants();
}

/** Agents' prompts: system + tools + the agent's own opening, as token ids. */
function openings(core: EngineCore, agents: number): number[][] {
  const tok = core.model.tokenizer;
  const head = tok.encode(`${SYSTEM}\n${TOOLS}\n`);
  return Array.from({ length: agents }, (_, a) => [...head, ...tok.encode(`Agent ${a}: ${TURN_TEXT[a % TURN_TEXT.length]}`, { addBos: false })]);
}

/** The next turn of a conversation: history, the answer, a tool result and a new message. */
function nextTurn(core: EngineCore, prompt: readonly number[], answer: Drained, agent: number, turn: number): number[] {
  const tool = core.model.tokenizer.encode(`\nresult ${agent}.${turn}: ok.\nuser: ${TURN_TEXT[(agent + turn) % TURN_TEXT.length]}`, { addBos: false });
  return [...prompt, ...answer.tokens, ...tool];
}

/** Where two token lists first differ, for a readable failure. */
function firstDivergence(a: readonly number[], b: readonly number[]): string {
  let i = 0;
  while (i < a.length && a[i] === b[i]) i++;
  return i === a.length && i === b.length ? 'identical' : `differ at token ${i}: ${a[i]} vs ${b[i]}`;
}

// Every shared model: with and without the cache, the same tokens and the same logprobs. The two
// models first in the list get the longer runs and the concurrent test.
const THOROUGH = ['wg-tolstoy-q8_0.gguf', 'wg-llama-spm-q8_0.gguf'];
for (const file of [...THOROUGH, ...GOLDEN_MODELS.filter((f) => !THOROUGH.includes(f))]) {
  const thorough = THOROUGH.includes(file);
  describe(`prefix cache on ${file}`, () => {
    let cached: Engine;
    let plain: Engine;
    beforeAll(async () => {
      cached = await engineFor(file, { contextLength: 256 });
      plain = await engineFor(file, { contextLength: 256, prefixCache: false });
    });
    afterAll(async () => {
      await cached?.destroy();
      await plain?.destroy();
    });

    it('multi-turn agents: cached_tokens of a perfect page-aligned cache; tokens and logprobs identical to no cache', async () => {
      const core = cached.core!;
      const params = samplingParams({ maxTokens: 6, stopIds: core.model.tokenizer.eotIds, logprobs: 3 });
      let prompts = openings(core, thorough ? 3 : 2);
      const computed: number[][] = [];
      let hits = 0;
      for (let turn = 0; turn < (thorough ? 3 : 2); turn++) {
        const next: number[][] = [];
        for (const [a, prompt] of prompts.entries()) {
          // One request at a time, so what is cached when it starts is exactly what came before.
          const handle = core.submit(prompt, params);
          const { out, logprobs } = await drainLogprobs(handle);
          const { out: ref, logprobs: refLogprobs } = await drainLogprobs(plain.core!.submit(prompt, params));
          expect(firstDivergence(out.tokens, ref.tokens), `agent ${a} turn ${turn}`).toBe('identical');
          // Batch-invariant kernels: a cache hit changes no bit of the logits.
          expect(logprobs, `agent ${a} turn ${turn}`).toEqual(refLogprobs);
          expect(handle.timings.cachedTokens, `agent ${a} turn ${turn}`).toBe(perfectHit(prompt, computed));
          hits += handle.timings.cachedTokens;
          computed.push(computedTokens(prompt, out));
          next.push(nextTurn(core, prompt, out, a, turn));
        }
        prompts = next;
      }
      expect(hits).toBeGreaterThan(0);
      const m = cached.metrics().prefixCache;
      expect(m.hitTokens).toBe(hits);
      expect(m.evictions).toBe(0);
      checkPool(core);
      checkPool(plain.core!);
    });

    it.runIf(thorough)('agents running concurrently give the same tokens as without the cache', async () => {
      const run = async (core: EngineCore) => {
        const params = samplingParams({ maxTokens: 5 });
        let prompts = openings(core, 6);
        const outs: Drained[][] = [];
        for (let turn = 0; turn < 2; turn++) {
          const results = await Promise.all(prompts.map((p) => drain(core.submit(p, params))));
          outs.push(results);
          prompts = prompts.map((p, a) => nextTurn(core, p, results[a], a, turn));
        }
        return outs.flat().map((r) => r.tokens);
      };
      const on = await run(cached.core!);
      const off = await run(plain.core!);
      on.forEach((tokens, i) => expect(firstDivergence(tokens, off[i]), `request ${i}`).toBe('identical'));
      checkPool(cached.core!);
    });
  });
}

describe('prefix cache through the OpenAI API (wg-tolstoy-q8_0)', () => {
  let engine: Engine;
  let plain: Engine;
  let core: EngineCore;
  beforeAll(async () => {
    engine = await engineFor('wg-tolstoy-q8_0.gguf');
    plain = await engineFor('wg-tolstoy-q8_0.gguf', { prefixCache: false });
    core = engine.core!;
  });
  afterAll(async () => {
    await engine?.destroy();
    await plain?.destroy();
  });

  it('reports cached_tokens on chat, completions and streamed usage; 0 on a miss', async () => {
    const messages = [{ role: 'system' as const, content: SYSTEM }, { role: 'user' as const, content: 'Who is Pierre?' }];
    const first = await engine.chat.completions.create({ messages, temperature: 0, max_tokens: 4 });
    expect(first.usage.prompt_tokens_details).toEqual({ cached_tokens: 0 });
    const second = await engine.chat.completions.create({ messages, temperature: 0, max_tokens: 4 });
    const full = Math.floor((second.usage.prompt_tokens - 1) / PAGE) * PAGE;
    expect(second.usage.prompt_tokens_details.cached_tokens).toBe(full);
    expect(second.choices[0].message.content).toBe(first.choices[0].message.content);
    const chunks: { usage?: { prompt_tokens_details: { cached_tokens: number } } | null }[] = [];
    for await (const c of await engine.chat.completions.create({ messages, temperature: 0, max_tokens: 4, stream: true, stream_options: { include_usage: true } })) chunks.push(c);
    expect(chunks.at(-1)!.usage!.prompt_tokens_details.cached_tokens).toBe(full);
    const text = await engine.completions.create({ prompt: 'A prompt nobody sent before, about the war', max_tokens: 2, temperature: 0 }) as Completion;
    expect(text.usage!.prompt_tokens_details.cached_tokens).toBe(0);
    const off = await plain.chat.completions.create({ messages, temperature: 0, max_tokens: 4 });
    expect(off.usage.prompt_tokens_details.cached_tokens).toBe(0);
    expect(off.choices[0].message.content).toBe(first.choices[0].message.content);
    expect(await engine.runtimeStatsText()).toMatch(/prefix cache: \d+ of \d+ tokens hit/);
    checkPool(core);
  });

  it('salts isolate: a prompt cached under one salt is a miss under another', async () => {
    const prompt = `Salted. ${TOOLS} ${SYSTEM}`; // shares no page with the other tests' prompts
    const ask = (cache_salt?: string) => engine.completions.create({ prompt, max_tokens: 3, temperature: 0, cache_salt }) as Promise<Completion>;
    const a = await ask('tenant-a');
    const b = await ask('tenant-b');
    const none = await ask();
    const a2 = await ask('tenant-a');
    expect([a, b, none].map((r) => r.usage!.prompt_tokens_details.cached_tokens)).toEqual([0, 0, 0]);
    expect(a2.usage!.prompt_tokens_details.cached_tokens).toBeGreaterThan(0);
    expect(new Set([a, b, none, a2].map((r) => r.choices[0].text)).size).toBe(1);
    for (const bad of ['', 5, ['x']]) {
      const e = await (engine.completions.create({ prompt, max_tokens: 1, cache_salt: bad as string }) as Promise<unknown>).then(() => null, (x: unknown) => x);
      expect(e).toBeInstanceOf(ApiError);
      expect((e as ApiError).param).toBe('cache_salt');
    }
    checkPool(core);
  });

  it('n > 1 choices share the prompt pages (GPU page copy) and sample as without sharing', async () => {
    const prompt = 'Prince Andrew looked at the old count and Natasha ran into the drawing room';
    const copiesBefore = engine.metrics().prefixCache.pageCopies;
    const rt = core.model.rt;
    const [submissionsBefore, stepsBefore] = [rt.submissions, engine.metrics().steps];
    const ask = (e: Engine, extra: object) => e.completions.create({ prompt, max_tokens: 8, n: 3, ...extra }) as Promise<Completion>;
    const greedy = await ask(engine, { temperature: 0 });
    // The page copies ride in the submission of their step: one per step.
    expect(rt.submissions - submissionsBefore).toBe(engine.metrics().steps - stepsBefore);
    const texts = greedy.choices.map((c) => c.text);
    expect(new Set(texts).size).toBe(1);
    const promptTokens = greedy.usage!.prompt_tokens;
    // The partial last page of the prompt is copied once for each choice but one.
    if ((promptTokens - 1) % PAGE !== 0) expect(engine.metrics().prefixCache.pageCopies - copiesBefore).toBe(2);
    const sampledOn = await ask(engine, { temperature: 0.9, seed: 42 });
    const sampledOff = await ask(plain, { temperature: 0.9, seed: 42 });
    expect(sampledOn.choices.map((c) => c.text)).toEqual(sampledOff.choices.map((c) => c.text));
    expect(new Set(sampledOn.choices.map((c) => c.text)).size).toBeGreaterThan(1);
    checkPool(core);
  });

  it('aborting sequences that hold shared pages keeps the pool and the cache consistent', async () => {
    const prompt = core.model.tokenizer.encode(`${SYSTEM} ${TOOLS} Natasha`);
    const params: SamplingParams = samplingParams({ maxTokens: 30 });
    const first = core.submit(prompt, params);
    const others = [core.submit(prompt, params, { sharePromptWith: first }), core.submit(prompt, params, { sharePromptWith: first })];
    const seen: number[] = [];
    const done = drain(others[0], (n) => {
      seen.push(n);
      if (n === 2) {
        first.abort();
        others[1].abort();
      }
    });
    const results = await Promise.all([drain(first), done, drain(others[1])]);
    expect(results[0].reason).toBe('abort');
    expect(results[2].reason).toBe('abort');
    expect(results[1].tokens).toEqual((await drain(plain.core!.submit(prompt, params))).tokens);
    checkPool(core);
  });

  it('a small pool evicts and preempts sequences with shared pages, and outputs still agree', async () => {
    const pageBytes = core.kv.bytes / core.kv.pool.totalPages;
    const tight = await engineFor('wg-tolstoy-q8_0.gguf', { kvMemoryBytes: pageBytes * 20, pageSize: PAGE });
    try {
      const tc = tight.core!;
      const params = samplingParams({ maxTokens: 12 });
      let prompts = openings(tc, 5);
      for (let turn = 0; turn < 2; turn++) {
        const firsts = prompts.map((p) => tc.submit(p, params));
        const seconds = prompts.map((p, a) => tc.submit(p, params, { sharePromptWith: firsts[a] }));
        const results = await Promise.all([...firsts, ...seconds].map((h) => drain(h)));
        const refs = await Promise.all(prompts.map((p) => drain(plain.core!.submit(p, params))));
        results.forEach((r, i) => expect(firstDivergence(r.tokens, refs[i % prompts.length].tokens), `request ${i} turn ${turn}`).toBe('identical'));
        prompts = prompts.map((p, a) => nextTurn(tc, p, results[a], a, turn));
        checkPool(tc);
      }
      const m = tight.metrics();
      expect(m.prefixCache.evictions).toBeGreaterThan(0);
      expect(m.preemptions).toBeGreaterThan(0);
      expect(m.prefixCache.hitTokens).toBeGreaterThan(0);
    } finally {
      await tight.destroy();
    }
  });
});
