// Engine sessions (engine.sessions, session_id) on real models: a session's KV stays pinned
// between requests, append then prompt equals one prompt with the whole context (greedy, same
// tokens and logprobs), clones start with no prefill, destroy frees the pages, aborts leave the
// session usable, and session requests batch with each other in one step.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEngine, type ChatCompletion, type ChatCompletionMessageParam, type Engine } from '../../src/index.js';
import { createOpenAiHandler } from '../../src/engine/http.js';
import { SHIPPED_MODEL, shippedEngine } from '../helpers/engine.js';
import { getRuntime } from '../helpers/gpu.js';
import { modelPath } from '../helpers/shared.js';

const SYSTEM: ChatCompletionMessageParam = { role: 'system', content: 'War and Peace.' };
const user = (content: string): ChatCompletionMessageParam => ({ role: 'user', content });

/** Prompt tokens the request computed (not taken from a session or the prefix cache). */
const computed = (r: ChatCompletion) => r.usage!.prompt_tokens - r.usage!.prompt_tokens_details.cached_tokens;
const tokensOf = (r: ChatCompletion) => r.choices[0].logprobs!.content!.map((t) => [t.token, t.logprob]);

describe('engine sessions on the shipped model', () => {
  let engine: Engine;
  beforeAll(async () => {
    engine = await shippedEngine();
  });
  afterAll(() => engine?.destroy());

  const poolIsEmpty = async () => {
    await engine.core!.idle();
    engine.core!.scheduler.checkInvariants();
    expect(engine.metrics().pagesUsed).toBe(0);
  };

  it('create computes the context once; append computes only its messages; a prompt after it equals one prompt of the whole context, greedy', async () => {
    const created = await engine.sessions.create({ messages: [SYSTEM] });
    expect(created.usage!.prompt_tokens).toBeGreaterThan(0);
    expect(created.pinned).toBe(true);
    const history = [SYSTEM, user('Prince Andrew looked at'), { role: 'assistant' as const, content: 'him.' }];
    const appended = await engine.chat.completions.create({ messages: history, max_tokens: 0, add_generation_prompt: false, session_id: created.id });
    expect(appended.usage!.prompt_tokens_details.cached_tokens).toBe(created.usage!.prompt_tokens);
    const whole = [...history, user('Pierre said')];
    const onSession = await engine.chat.completions.create({ messages: whole, max_tokens: 16, temperature: 0, logprobs: true, session_id: created.id });
    expect(onSession.usage!.prompt_tokens_details.cached_tokens).toBe(appended.usage!.prompt_tokens);
    expect(computed(onSession)).toBe(onSession.usage!.prompt_tokens - appended.usage!.prompt_tokens);

    const fresh = await createEngine({ model: engine.core!.model.source, runtime: await getRuntime(), prefixCache: false });
    try {
      const once = await fresh.chat.completions.create({ messages: whole, max_tokens: 16, temperature: 0, logprobs: true });
      expect(once.usage!.prompt_tokens_details.cached_tokens).toBe(0);
      expect(tokensOf(onSession)).toEqual(tokensOf(once));
      expect(onSession.choices[0].message.content).toBe(once.choices[0].message.content);
    } finally {
      await fresh.destroy();
    }
    // The reply's KV stayed in the session: the next turn computes its own messages and the end of the reply only.
    const info = await engine.sessions.retrieve(created.id);
    expect(info.tokens).toBeGreaterThanOrEqual(onSession.usage!.prompt_tokens + onSession.usage!.completion_tokens - 1);
    const next = [...whole, { role: 'assistant' as const, content: onSession.choices[0].message.content ?? '' }, user('and then')];
    const third = await engine.chat.completions.create({ messages: next, max_tokens: 2, temperature: 0, session_id: created.id });
    expect(third.usage!.prompt_tokens_details.cached_tokens).toBeGreaterThanOrEqual(onSession.usage!.prompt_tokens);
    expect(await engine.sessions.destroy(created.id)).toBe(true);
    await poolIsEmpty();
  });

  it('clones share every page (no prefill) and run in one step; destroy frees the pages; the pool invariant holds throughout', async () => {
    const parent = await engine.sessions.create({ messages: [SYSTEM, user('Natasha and Sonya went to the ball.')] });
    const stepsBefore = engine.metrics().steps;
    const clones = await Promise.all(Array.from({ length: 4 }, () => engine.sessions.clone(parent.id)));
    expect(engine.metrics().steps).toBe(stepsBefore);
    for (const c of clones) {
      expect(c.tokens).toBe(parent.tokens);
      expect(c.usage!.prompt_tokens_details.cached_tokens).toBe(parent.tokens);
    }
    expect(engine.metrics().pagesUsed).toBe(parent.pages);
    expect(engine.metrics().sessions).toMatchObject({ open: 5, pinnedPages: parent.pages });
    engine.core!.scheduler.checkInvariants();
    const replies = await Promise.all(clones.map((c, i) => engine.chat.completions.create({
      messages: [SYSTEM, user('Natasha and Sonya went to the ball.'), { role: 'assistant', content: '' }, user(`Question ${i}`)], max_tokens: 4, temperature: 0, session_id: c.id,
    })));
    for (const r of replies) expect(r.usage!.prompt_tokens_details.cached_tokens).toBeGreaterThanOrEqual(parent.tokens - 1);
    engine.core!.scheduler.checkInvariants();
    for (const c of [parent, ...clones]) expect(await engine.sessions.destroy(c.id)).toBe(true);
    await poolIsEmpty();
    const pool = engine.core!.kv.pool;
    expect(pool.cachedPages + pool.freePages).toBe(pool.totalPages);
  });

  it('an aborted prompt leaves the session usable; unknown sessions and n > 1 are 4xx errors', async () => {
    const s = await engine.sessions.create({ messages: [SYSTEM] });
    const controller = new AbortController();
    const stream = await engine.chat.completions.create({ messages: [SYSTEM, user('Prince Andrew')], max_tokens: 64, temperature: 0, stream: true, session_id: s.id }, { signal: controller.signal });
    let chunks = 0;
    for await (const _ of stream) if (++chunks === 3) controller.abort();
    const after = await engine.chat.completions.create({ messages: [SYSTEM, user('Pierre')], max_tokens: 2, temperature: 0, session_id: s.id });
    expect(after.usage!.prompt_tokens_details.cached_tokens).toBeGreaterThan(0);
    await expect(engine.chat.completions.create({ messages: [SYSTEM], max_tokens: 1, session_id: 'sess-none' })).rejects.toMatchObject({ status: 404, param: 'session_id' });
    await expect(engine.chat.completions.create({ messages: [SYSTEM], max_tokens: 1, n: 2, session_id: s.id })).rejects.toMatchObject({ status: 400, param: 'session_id' });
    await expect(engine.sessions.clone('sess-none')).rejects.toMatchObject({ status: 404 });
    await engine.sessions.destroy(s.id);
    await poolIsEmpty();
  });
});

describe('engine sessions over HTTP (createOpenAiHandler on the shipped model)', () => {
  let engine: Engine;
  beforeAll(async () => {
    engine = await shippedEngine();
  });
  afterAll(() => engine?.destroy());

  it('POST /v1/sessions, session_id on /v1/chat/completions, POST /v1/sessions/{id}/clone, GET and DELETE /v1/sessions/{id}', async () => {
    const handler = createOpenAiHandler(engine);
    const call = async (method: string, path: string, body?: unknown) => {
      const r = await handler(new Request(`http://localhost${path}`, { method, ...(body ? { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } } : {}) }));
      return { status: r.status, body: await r.json() };
    };
    const created = await call('POST', '/v1/sessions', { messages: [SYSTEM] });
    expect(created.status).toBe(200);
    expect(created.body).toMatchObject({ object: 'session', pinned: true });
    const id = created.body.id as string;
    const reply = await call('POST', '/v1/chat/completions', { messages: [SYSTEM, user('Pierre')], max_tokens: 3, temperature: 0, session_id: id });
    expect(reply.body.usage.prompt_tokens_details.cached_tokens).toBe(created.body.usage.prompt_tokens);
    const clone = await call('POST', `/v1/sessions/${id}/clone`);
    expect(clone.body.tokens).toBe((await call('GET', `/v1/sessions/${id}`)).body.tokens);
    expect((await call('DELETE', `/v1/sessions/${id}`)).body).toEqual({ id, object: 'session.deleted', deleted: true });
    const gone = await call('GET', `/v1/sessions/${id}`);
    expect(gone.status).toBe(404);
    expect(gone.body.error).toMatchObject({ param: 'session_id', code: 'session_not_found' });
    expect((await call('DELETE', `/v1/sessions/${clone.body.id}`)).status).toBe(200);
    await engine.core!.idle();
    expect(engine.metrics().pagesUsed).toBe(0);
  });
});

describe('the open-session limit over HTTP (maxSessions 2)', () => {
  let engine: Engine;
  beforeAll(async () => {
    engine = await shippedEngine({ maxSessions: 2 });
  });
  afterAll(() => engine?.destroy());

  it('a third session (created or cloned) is refused with 429 too_many_sessions; deleting one makes room', async () => {
    const handler = createOpenAiHandler(engine);
    const post = async (path: string, body: unknown = {}) => {
      const r = await handler(new Request(`http://localhost${path}`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }));
      return { status: r.status, body: await r.json() };
    };
    const a = await post('/v1/sessions', { messages: [SYSTEM] });
    expect((await post(`/v1/sessions/${a.body.id}/clone`)).status).toBe(200);
    for (const refused of [await post('/v1/sessions'), await post(`/v1/sessions/${a.body.id}/clone`)]) {
      expect(refused.status).toBe(429);
      expect(refused.body.error).toMatchObject({ type: 'rate_limit_error', code: 'too_many_sessions' });
      expect(refused.body.error.message).toMatch(/2 sessions are open/);
    }
    expect(await engine.sessions.destroy(a.body.id)).toBe(true);
    expect((await post('/v1/sessions')).status).toBe(200);
    expect(engine.metrics().sessions).toMatchObject({ open: 2, expired: 0 });
  });
});

describe('engine sessions through a GPU device loss', () => {
  it('a lost device unpins the sessions; their next requests compute the context again and answer as before', async () => {
    const engine = await createEngine({ model: SHIPPED_MODEL });
    try {
      const body = { messages: [SYSTEM, user('Pierre')], max_tokens: 8, temperature: 0 };
      const expected = await engine.chat.completions.create(body);
      const s = await engine.sessions.create({ messages: [SYSTEM] });
      engine.model!.rt.gpu.device.destroy();
      const after = await engine.chat.completions.create({ ...body, session_id: s.id });
      expect(engine.core!.recoveries).toBe(1);
      expect(after.choices[0].message.content).toBe(expected.choices[0].message.content);
      expect(after.usage!.prompt_tokens_details.cached_tokens).toBe(0);
      expect((await engine.sessions.retrieve(s.id)).pinned).toBe(true);
      engine.core!.scheduler.checkInvariants();
    } finally {
      await engine.unload();
    }
  });
});

describe('the aim: 8 sessions cloned from one 500-token context (wg-llama-spm-q8_0, context 2048)', () => {
  let engine: Engine;
  beforeAll(async () => {
    engine = await createEngine({ model: modelPath('wg-llama-spm-q8_0.gguf'), runtime: await getRuntime(), contextLength: 1024, maxBatchTokens: 1024 });
  });
  afterAll(() => engine?.destroy());

  it('start generating with no prefill of that context, all in one step', async () => {
    // A long system message: the tokenizer's words make a context of about 500 tokens.
    const system = Array.from({ length: 62 }, (_, i) => `Chapter ${i} of the story.`).join(' ');
    const context: ChatCompletionMessageParam[] = [{ role: 'system', content: system }, user('Summarize.')];
    const parent = await engine.sessions.create({ messages: context });
    expect(parent.tokens).toBeGreaterThanOrEqual(500);
    expect(parent.usage!.prompt_tokens_details.cached_tokens).toBe(0);
    const clones = await Promise.all(Array.from({ length: 8 }, () => engine.sessions.clone(parent.id)));
    const m0 = engine.core!.metrics.snapshot();
    const since = performance.now();
    const replies = await Promise.all(clones.map((c, i) => engine.chat.completions.create({
      messages: [...context, { role: 'assistant', content: 'Yes.' }, user(`Agent ${i}: go on.`)], max_tokens: 4, temperature: 0, ignore_eos: true, session_id: c.id,
    })));
    const m1 = engine.core!.metrics.snapshot();
    const promptTokens = replies.reduce((n, r) => n + r.usage!.prompt_tokens, 0);
    const cachedTokens = replies.reduce((n, r) => n + r.usage!.prompt_tokens_details.cached_tokens, 0);
    for (const r of replies) expect(r.usage!.prompt_tokens_details.cached_tokens).toBeGreaterThanOrEqual(parent.tokens - 1);
    // Every clone computes only its own turn: nothing of the 500-token context.
    expect(promptTokens - cachedTokens).toBeLessThan(8 * 40);
    expect(m1.cachedPromptTokens - m0.cachedPromptTokens).toBe(cachedTokens);
    // The first step of the eight holds all of them.
    const steps = engine.core!.metrics.stepsSince(since);
    expect(Math.max(...steps.map((s) => s.runningSeqs))).toBe(8);
    expect(steps.reduce((n, s) => n + s.prefillTokens, 0)).toBe(promptTokens - cachedTokens);
    console.log(`8 clones of a ${parent.tokens}-token context: ${promptTokens} prompt tokens, ${cachedTokens} from the session (${promptTokens - cachedTokens} computed)`);
    for (const c of [parent, ...clones]) await engine.sessions.destroy(c.id);
    await engine.core!.idle();
    expect(engine.metrics().pagesUsed).toBe(0);
  });
});
