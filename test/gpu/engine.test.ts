// The OpenAI-style engine on the shipped model: responses and chunk streams, n, stop strings,
// sampling controls, logprobs, abort and interrupt, and errors that name the problem while
// other requests carry on.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError, GpuOutOfMemoryError, renderChat, type ChatCompletionChunk, type Completion, type Engine } from '../../src/index.js';
import { getRuntime } from '../helpers/gpu.js';
import { drain, samplingParams, shippedEngine } from '../helpers/engine.js';

const PROMPT = 'Prince Andrew looked at';
const chat = <E extends object = object>(content: string, extra?: E) => ({ messages: [{ role: 'user' as const, content }], temperature: 0, ...extra }) as { messages: { role: 'user'; content: string }[]; temperature: number } & E;

async function collect<T>(stream: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const c of stream) out.push(c);
  return out;
}

async function apiError(p: Promise<unknown>): Promise<ApiError> {
  const e = await p.then(() => null, (err: unknown) => err);
  expect(e).toBeInstanceOf(ApiError);
  return e as ApiError;
}

describe('Engine: OpenAI chat and text completions', () => {
  let engine: Engine;
  let greedyText: string;
  beforeAll(async () => {
    engine = await shippedEngine();
  });
  afterAll(() => engine?.destroy());

  const expectPoolEmpty = async () => {
    await engine.core!.idle();
    expect(engine.core!.kv.pool.usedPages).toBe(0);
    engine.core!.scheduler.checkInvariants();
  };

  it('a greedy chat completion is the greedy continuation of the chat prompt', async () => {
    const r = await engine.chat.completions.create(chat(PROMPT, { max_tokens: 24 }));
    const tok = engine.model!.tokenizer;
    const promptIds = chatPromptIds(engine, PROMPT);
    expect(r.usage.prompt_tokens).toBe(promptIds.length);
    const alone = await drain(engine.core!.submit(promptIds, samplingParams({ maxTokens: 24, stopIds: tok.eotIds })));
    expect(r.object).toBe('chat.completion');
    expect(r.id).toMatch(/^chatcmpl-/);
    expect(r.model).toBe('wg-tolstoy-q8_0');
    expect(r.choices).toHaveLength(1);
    expect(r.choices[0].message).toEqual({ role: 'assistant', content: alone.text, refusal: null });
    expect(r.choices[0].finish_reason).toBe('length');
    expect(r.usage.completion_tokens).toBe(24);
    expect(r.usage.total_tokens).toBe(r.usage.prompt_tokens + 24);
    expect(r.usage.extra.time_to_first_token_s).toBeGreaterThan(0);
    greedyText = r.choices[0].message.content!;
    expect(await engine.getMessage()).toBe(greedyText);
    await expectPoolEmpty();
  });

  it('streams the same text in chunks, role first, finish_reason last, usage when asked', async () => {
    const chunks = await collect(await engine.chat.completions.create(chat(PROMPT, { max_tokens: 24, stream: true as const, stream_options: { include_usage: true } })));
    expect(chunks[0].choices[0].delta).toEqual({ role: 'assistant', content: '' });
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    expect(text).toBe(greedyText);
    const finish = chunks.filter((c) => c.choices[0]?.finish_reason);
    expect(finish).toHaveLength(1);
    expect(finish[0].choices[0].finish_reason).toBe('length');
    const last = chunks.at(-1)!;
    expect(last.choices).toEqual([]);
    expect(last.usage?.completion_tokens).toBe(24);
    expect(chunks.slice(0, -1).every((c) => c.usage === undefined)).toBe(true);
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
  });

  it('n choices are generated together; seeded choices are reproducible and differ from each other', async () => {
    const req = chat(PROMPT, { max_tokens: 12, n: 3, temperature: 1, seed: 11 });
    const a = await engine.chat.completions.create(req);
    const b = await engine.chat.completions.create(req);
    expect(a.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    expect(b.choices.map((c) => c.message.content)).toEqual(a.choices.map((c) => c.message.content));
    expect(new Set(a.choices.map((c) => c.message.content)).size).toBeGreaterThan(1);
    expect(a.usage.completion_tokens).toBe(36);
  });

  it('a stop string ends the text before it, also when it spans tokens', async () => {
    // A stop string made of the end of one token and the start of the next.
    const words = greedyText.trim().split(/\s+/);
    const stop = `${words[1].slice(-2)} ${words[2].slice(0, 2)}`;
    const r = await engine.chat.completions.create(chat(PROMPT, { max_tokens: 24, stop: [stop, 'never appears'] }));
    expect(r.choices[0].finish_reason).toBe('stop');
    expect(r.choices[0].message.content).toBe(greedyText.slice(0, greedyText.indexOf(stop)));
    const streamed = await collect(await engine.chat.completions.create(chat(PROMPT, { max_tokens: 24, stop, stream: true as const })));
    expect(streamed.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe(r.choices[0].message.content);
    await expectPoolEmpty();
  });

  it('text completions: string, token ids, several prompts, echo, stream', async () => {
    const ids = engine.model!.tokenizer.encode('The old count');
    const a = await engine.completions.create({ prompt: 'The old count', max_tokens: 8, temperature: 0 });
    const b = await engine.completions.create({ prompt: ids, max_tokens: 8, temperature: 0 });
    expect(a.object).toBe('text_completion');
    expect(b.choices[0].text).toBe(a.choices[0].text);
    expect(a.usage?.prompt_tokens).toBe(ids.length);
    const many = await engine.completions.create({ prompt: ['The old count', PROMPT], max_tokens: 8, temperature: 0, n: 2, echo: true });
    expect(many.choices.map((c) => c.index)).toEqual([0, 1, 2, 3]);
    expect(many.choices[0].text).toBe(`The old count${a.choices[0].text}`);
    expect(many.choices[1].text).toBe(many.choices[0].text);
    expect(many.choices[2].text.startsWith(PROMPT)).toBe(true);
    const chunks: Completion[] = await collect(await engine.completions.create({ prompt: 'The old count', max_tokens: 8, temperature: 0, stream: true as const }));
    expect(chunks.map((c) => c.choices[0]?.text ?? '').join('')).toBe(a.choices[0].text);
    expect(chunks.at(-1)!.choices[0].finish_reason).toBe('length');
  });

  it('logit_bias forces or bans tokens; penalties change greedy output', async () => {
    const tok = engine.model!.tokenizer;
    const forced = tok.encode(' Natasha', { addBos: false }).at(-1)!;
    const r = await engine.completions.create({ prompt: PROMPT, max_tokens: 4, temperature: 0, logit_bias: { [forced]: 100 } });
    expect(r.choices[0].text).toBe(tok.tokenToPiece(forced).repeat(4));
    const plain = await engine.completions.create({ prompt: PROMPT, max_tokens: 12, temperature: 0 });
    const [firstToken] = (await drain(engine.core!.submit(tok.encode(PROMPT), samplingParams({ maxTokens: 1 })))).tokens;
    expect(tok.tokenToPiece(firstToken)).toBe(plain.choices[0].text.slice(0, tok.tokenToPiece(firstToken).length));
    const banned = await engine.completions.create({ prompt: PROMPT, max_tokens: 12, temperature: 0, logit_bias: { [firstToken]: -100 } });
    expect(banned.choices[0].text).not.toBe(plain.choices[0].text);
    const penalized = await engine.completions.create({ prompt: PROMPT, max_tokens: 24, temperature: 0, frequency_penalty: 2, presence_penalty: 2 });
    const repeated = await engine.completions.create({ prompt: PROMPT, max_tokens: 24, temperature: 0 });
    expect(penalized.choices[0].text).not.toBe(repeated.choices[0].text);
  });

  it('logprobs: the chosen token first among greedy top_logprobs, probabilities that sum to at most 1', async () => {
    const r = await engine.chat.completions.create(chat(PROMPT, { max_tokens: 6, logprobs: true, top_logprobs: 5 }));
    const content = r.choices[0].logprobs!.content!;
    expect(content).toHaveLength(6);
    expect(content.map((c) => c.token).join('')).toBe(r.choices[0].message.content);
    for (const c of content) {
      expect(c.top_logprobs).toHaveLength(5);
      expect(c.top_logprobs[0].token).toBe(c.token);
      expect(c.top_logprobs[0].logprob).toBeCloseTo(c.logprob, 5);
      expect(c.logprob).toBeLessThanOrEqual(0);
      expect(c.top_logprobs.reduce((a, t) => a + Math.exp(t.logprob), 0)).toBeLessThanOrEqual(1 + 1e-5);
      expect(c.bytes).toEqual(Array.from(new TextEncoder().encode(c.token)));
    }
    const legacy = await engine.completions.create({ prompt: PROMPT, max_tokens: 4, temperature: 0, logprobs: 2 });
    const lp = legacy.choices[0].logprobs!;
    expect(lp.tokens.join('')).toBe(legacy.choices[0].text);
    expect(lp.token_logprobs).toHaveLength(4);
    expect(Object.keys(lp.top_logprobs[0]).length).toBeLessThanOrEqual(2);
  });

  it('aborting through a signal ends the stream with finish_reason abort and frees the pages', async () => {
    const controller = new AbortController();
    const stream = await engine.chat.completions.create(chat(PROMPT, { max_tokens: 200, stream: true as const }), { signal: controller.signal });
    const chunks: ChatCompletionChunk[] = [];
    for await (const c of stream) {
      chunks.push(c);
      if (chunks.length === 4) controller.abort();
    }
    expect(chunks.at(-1)!.choices[0].finish_reason).toBe('abort');
    expect(chunks.length).toBeLessThan(20);
    await expectPoolEmpty();
  });

  it('breaking out of a stream aborts its request; interruptGenerate stops every request', async () => {
    const stream = await engine.chat.completions.create(chat(PROMPT, { max_tokens: 200, stream: true as const }));
    let n = 0;
    for await (const _ of stream) if (++n === 3) break;
    await expectPoolEmpty();
    // Two streams; once both have produced a token, interruptGenerate ends them both.
    const streams = await Promise.all([1, 2].map(() => engine.chat.completions.create(chat(PROMPT, { max_tokens: 200, temperature: 1, stream: true as const }))));
    let started = 0;
    const finishes = streams.map(async (s) => {
      let seen = false;
      let finish: string | null = null;
      for await (const c of s) {
        if (!seen && c.choices[0]?.delta.content) {
          seen = true;
          if (++started === 2) engine.interruptGenerate();
        }
        finish = c.choices[0]?.finish_reason ?? finish;
      }
      return finish;
    });
    expect(await Promise.all(finishes)).toEqual(['abort', 'abort']);
    await expectPoolEmpty();
  });

  it('invalid requests get an OpenAI-shaped error naming the problem; other requests carry on', async () => {
    const ok = engine.chat.completions.create(chat(PROMPT, { max_tokens: 16 }));
    const cases: [unknown, string, RegExp][] = [
      [{ messages: [] }, 'messages', /at least one message/],
      [{ messages: 'hi' }, 'messages', /must be an array/],
      [{ messages: [{ role: 'wizard', content: 'x' }] }, 'messages[0].role', /must be one of/],
      [chat(PROMPT, { temperature: 'hot' }), 'temperature', /temperature must be a number/],
      [chat(PROMPT, { max_tokens: -1 }), 'max_tokens', /at least 0/],
      [chat(PROMPT, { top_p: 0 }), 'top_p', /top_p/],
      [chat(PROMPT, { logit_bias: { abc: 1 } }), 'logit_bias', /not a token id/],
      [chat(PROMPT, { stop: ['a', 'b', 'c', 'd', 'e'] }), 'stop', /at most 4/],
      [chat(PROMPT, { n: 0 }), 'n', /n must be an integer/],
      [chat(PROMPT, { top_logprobs: 3 }), 'top_logprobs', /needs logprobs/],
      [chat('word '.repeat(300)), 'messages', /maximum context length is 256 tokens/],
      [{ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] }, 'messages[0].content[0].type', /only text parts/],
    ];
    for (const [request, param, message] of cases) {
      const e = await apiError(engine.chat.completions.create(request as never));
      expect(e.status, param).toBe(400);
      expect(e.toJSON().error).toMatchObject({ type: 'invalid_request_error', param });
      expect(e.message).toMatch(message);
    }
    const long = await apiError(engine.completions.create({ prompt: 'word '.repeat(300) }));
    expect(long.code).toBe('context_length_exceeded');
    expect(long.param).toBe('prompt');
    // web-llm's boolean logprobs on a text completion: the error still names `prompt`.
    expect((await apiError(engine.completions.create({ prompt: 'word '.repeat(300), logprobs: true }))).param).toBe('prompt');
    const unknown = await apiError(engine.chat.completions.create({ ...chat(PROMPT), model: 'gpt-4' }));
    expect(unknown.status).toBe(404);
    expect(unknown.message).toMatch(/"gpt-4" does not exist.*wg-tolstoy-q8_0/);
    expect((await ok).choices[0].message.content).toBe(greedyText.slice(0, (await ok).choices[0].message.content!.length));
    await expectPoolEmpty();
  });

  it('reports runtime stats and lists its model', async () => {
    expect(await engine.runtimeStatsText()).toMatch(/^prefill: [\d.]+ tokens\/sec, decode: [\d.]+ tokens\/sec/);
    const m = engine.metrics();
    expect(m.requests).toBeGreaterThan(10);
    expect(m.totalPages).toBe(engine.core!.kv.pool.totalPages);
    expect(await engine.models.list()).toEqual({ object: 'list', data: [{ id: 'wg-tolstoy-q8_0', object: 'model', created: 0, owned_by: 'wgserve' }] });
    await engine.resetChat();
    expect(engine.metrics().requests).toBe(0);
  });
});

function chatPromptIds(engine: Engine, content: string): number[] {
  const { tokenizer, chatTemplate } = engine.model!;
  const text = renderChat(chatTemplate, [{ role: 'user', content }], { addGenerationPrompt: true, bosToken: tokenizer.bosText, eosToken: tokenizer.eosText });
  return tokenizer.encodeChatPrompt(text);
}

describe('Engine: not enough GPU memory', () => {
  // SwiftShader refuses any single allocation of 1 GiB (VK_ERROR_OUT_OF_DEVICE_MEMORY), which
  // makes a real out-of-memory error reproducible here; a hardware GPU may well have the memory.
  it('a KV cache the device cannot hold fails with an error saying so; nothing leaks; the next engine works', async () => {
    const rt = await getRuntime();
    if (!rt.gpu.adapter.isSoftware) return void console.warn('skipped: the out-of-memory case is reproducible on SwiftShader only');
    const before = rt.buffers.bytesAllocated;
    const e = await shippedEngine({ kvMemoryBytes: 2 ** 40 }).then(() => null, (err: Error) => err);
    expect(e).toBeInstanceOf(GpuOutOfMemoryError);
    expect(e!.message).toMatch(/not enough GPU memory for a KV cache of 1048576 MiB \(ask for less memory\)/);
    expect(rt.buffers.bytesAllocated).toBe(before);
    const engine = await shippedEngine();
    try {
      const r = await engine.chat.completions.create(chat(PROMPT, { max_tokens: 4 }));
      expect(r.usage.completion_tokens).toBe(4);
    } finally {
      await engine.destroy();
    }
  });
});
