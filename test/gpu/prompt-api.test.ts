// The Prompt API (LanguageModel) over an in-process Engine on the shipped model: sessions keep
// their context across prompt/append, clones fork it, overflow evicts the oldest turns, aborts and
// destroy stop calls, and each misuse gets the exception the spec names.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../../src/index.js';
import { createLanguageModel, type LanguageModelClass, type LanguageModelSession } from '../../src/prompt-api/index.js';
import { shippedEngine } from '../helpers/engine.js';

const SYSTEM = { role: 'system' as const, content: 'War and Peace.' };
const greedy = { samplingMode: 'most-predictable' as const };

async function rejection(p: Promise<unknown>): Promise<Error> {
  const e = await p.then(() => null, (err: unknown) => err);
  expect(e).toBeInstanceOf(Error);
  return e as Error;
}

async function readAll(stream: ReadableStream<string>): Promise<string[]> {
  const chunks: string[] = [];
  for await (const c of stream as unknown as AsyncIterable<string>) chunks.push(c);
  return chunks;
}

describe('LanguageModel over an in-process Engine', () => {
  let engine: Engine;
  let LanguageModel: LanguageModelClass;
  beforeAll(async () => {
    engine = await shippedEngine();
    LanguageModel = createLanguageModel({ engine, maxResponseTokens: 12 });
  });
  afterAll(() => engine?.destroy());

  const poolIsEmpty = async () => {
    await engine.core!.idle();
    expect(engine.metrics().pagesUsed).toBe(0);
    engine.core!.scheduler.checkInvariants();
  };

  it('availability: text in English is available; other types and languages are not; bad options throw', async () => {
    expect(await LanguageModel.availability()).toBe('available');
    expect(await LanguageModel.availability({ expectedInputs: [{ type: 'text', languages: ['en-US'] }] })).toBe('available');
    expect(await LanguageModel.availability({ expectedInputs: [{ type: 'image' }] })).toBe('unavailable');
    expect(await LanguageModel.availability({ expectedOutputs: [{ type: 'text', languages: ['ja'] }] })).toBe('unavailable');
    expect(await rejection(LanguageModel.availability({ expectedInputs: [{ type: 'text', languages: ['not a tag!'] }] }))).toBeInstanceOf(RangeError);
    expect(await rejection(LanguageModel.availability({ expectedInputs: [{ type: 'video' as 'text' }] }))).toBeInstanceOf(TypeError);
    expect(await LanguageModel.params()).toEqual({ defaultTopK: 40, maxTopK: 128, defaultTemperature: 0.7, maxTemperature: 2 });
  });

  it('create: initial prompts fill the context; measureContextUsage of them equals contextUsage; downloadprogress 0 then 1', async () => {
    const loaded: number[] = [];
    const session = await LanguageModel.create({
      ...greedy,
      initialPrompts: [SYSTEM, { role: 'user', content: 'Prince Andrew' }],
      monitor: (m) => m.addEventListener('downloadprogress', (e) => loaded.push((e as ProgressEvent).loaded)),
    });
    expect(loaded).toEqual([0, 1]);
    expect(session.contextWindow).toBe(256);
    expect(session.contextUsage).toBeGreaterThan(0);
    expect(await session.measureContextUsage([SYSTEM, { role: 'user', content: 'Prince Andrew' }])).toBe(session.contextUsage);
    expect(session.samplingMode).toBe('most-predictable');
    session.destroy();
    await poolIsEmpty();
  });

  it('a greedy prompt answers with the engine greedy reply to the whole context; the reply joins the context', async () => {
    const session = await LanguageModel.create({ ...greedy, initialPrompts: [SYSTEM] });
    const before = session.contextUsage;
    const text = await session.prompt('Prince Andrew looked at');
    const direct = await engine.chat.completions.create({ messages: [SYSTEM, { role: 'user', content: 'Prince Andrew looked at' }], temperature: 0, max_tokens: 12 });
    expect(text).toBe(direct.choices[0].message.content);
    expect(text.length).toBeGreaterThan(0);
    const counted = await engine.tokenize({ messages: [SYSTEM, { role: 'user', content: 'Prince Andrew looked at' }, { role: 'assistant', content: text }], add_generation_prompt: false });
    expect(session.contextUsage).toBe(counted.count);
    expect(session.contextUsage).toBeGreaterThan(before);
    session.destroy();
    await poolIsEmpty();
  });

  it('append then prompt equals one prompt with the whole context (greedy)', async () => {
    const a = await LanguageModel.create({ ...greedy, initialPrompts: [SYSTEM] });
    await a.append([{ role: 'user', content: 'Natasha' }, { role: 'assistant', content: 'danced.' }]);
    const afterAppend = a.contextUsage;
    await a.append([]);
    expect(a.contextUsage).toBe(afterAppend);
    const viaAppend = await a.prompt('Pierre said');
    const b = await LanguageModel.create({ ...greedy, initialPrompts: [SYSTEM, { role: 'user', content: 'Natasha' }, { role: 'assistant', content: 'danced.' }] });
    expect(b.contextUsage).toBe(afterAppend);
    expect(await b.prompt('Pierre said')).toBe(viaAppend);
    expect(b.contextUsage).toBe(a.contextUsage);
    a.destroy();
    b.destroy();
    await poolIsEmpty();
  });

  it('promptStreaming streams the same text as prompt, in several chunks', async () => {
    const s = await LanguageModel.create(greedy);
    const c = await s.clone();
    const chunks = await readAll(s.promptStreaming('The old prince'));
    expect(chunks.length).toBeGreaterThan(1);
    expect(chunks.join('')).toBe(await c.prompt('The old prince'));
    s.destroy();
    c.destroy();
  });

  it('clone forks the context: both continue alike, and neither sees the other', async () => {
    const parent = await LanguageModel.create({ ...greedy, initialPrompts: [SYSTEM] });
    await parent.prompt('Natasha');
    const child = await parent.clone();
    expect(child).toBeInstanceOf(LanguageModel);
    expect(child.contextUsage).toBe(parent.contextUsage);
    const fromChild = await child.prompt('Pierre');
    expect(child.contextUsage).toBeGreaterThan(parent.contextUsage);
    expect(await parent.prompt('Pierre')).toBe(fromChild);
    parent.destroy();
    expect(await child.measureContextUsage('x')).toBeGreaterThan(0); // the clone lives on
    child.destroy();
    await poolIsEmpty();
  });

  it('a prefix assistant message is continued, as continue_final_message does', async () => {
    const s = await LanguageModel.create(greedy);
    const text = await s.prompt([{ role: 'user', content: 'Prince Andrew' }, { role: 'assistant', content: 'He said', prefix: true }]);
    const direct = await engine.chat.completions.create({ messages: [{ role: 'user', content: 'Prince Andrew' }, { role: 'assistant', content: 'He said' }], continue_final_message: true, temperature: 0, max_tokens: 12 });
    expect(text).toBe(direct.choices[0].message.content);
    s.destroy();
  });

  it('aborting a prompt rejects with the reason and leaves the context as it was', async () => {
    const s = await LanguageModel.create({ ...greedy, initialPrompts: [SYSTEM] });
    const usage = s.contextUsage;
    const controller = new AbortController();
    const reader = s.promptStreaming('Prince Andrew', { signal: controller.signal }).getReader();
    await reader.read();
    controller.abort();
    const e = await rejection(reader.read());
    expect(e.name).toBe('AbortError');
    expect(s.contextUsage).toBe(usage);
    const reason = new Error('mine');
    const aborted = new AbortController();
    aborted.abort(reason);
    expect(await rejection(s.prompt('x', { signal: aborted.signal }))).toBe(reason);
    expect(() => s.promptStreaming('x', { signal: aborted.signal })).toThrow(reason);
    // Still usable, and the next prompt answers as if the aborted one never happened.
    const fresh = await LanguageModel.create({ ...greedy, initialPrompts: [SYSTEM] });
    expect(await s.prompt('Pierre')).toBe(await fresh.prompt('Pierre'));
    s.destroy();
    fresh.destroy();
    await poolIsEmpty();
  });

  it('destroy rejects calls under way and later ones with AbortError; a create signal destroys with its reason', async () => {
    const s = await LanguageModel.create(greedy);
    const pending = s.prompt('Prince Andrew');
    const queued = s.append('more');
    s.destroy();
    for (const p of [pending, queued, s.prompt('x'), s.append('x'), s.clone(), s.measureContextUsage('x')]) {
      expect((await rejection(p)).name).toBe('AbortError');
    }
    const controller = new AbortController();
    const t = await LanguageModel.create({ ...greedy, signal: controller.signal });
    const reason = new Error('create signal');
    controller.abort(reason);
    expect(await rejection(t.prompt('x'))).toBe(reason);
    const early = new AbortController();
    early.abort(reason);
    expect(await rejection(LanguageModel.create({ signal: early.signal }))).toBe(reason);
    await poolIsEmpty();
  });

  it('overflow evicts the oldest turns but never the initial prompts, firing contextoverflow', async () => {
    const Long = createLanguageModel({ engine, maxResponseTokens: 40 });
    const s = await Long.create({ ...greedy, initialPrompts: [SYSTEM] });
    const initialUsage = s.contextUsage;
    let overflows = 0;
    s.addEventListener('contextoverflow', () => overflows++);
    let handler = 0;
    s.oncontextoverflow = () => handler++;
    let legacy = 0;
    s.onquotaoverflow = () => legacy++;
    for (let i = 0; overflows === 0 && i < 12; i++) await s.prompt(`Chapter ${i}: Prince Andrew rode on.`);
    expect(overflows).toBe(1);
    expect(handler).toBe(1);
    expect(legacy).toBe(1);
    expect(s.contextUsage).toBeLessThanOrEqual(s.contextWindow);
    expect(s.contextUsage).toBeGreaterThan(initialUsage);
    // The initial prompt is still in the context: the session answers like a fresh one given the same turns.
    expect(await s.measureContextUsage([SYSTEM])).toBe(initialUsage);
    s.destroy();
    await poolIsEmpty();
  });

  it('an input that cannot fit even alone with the initial prompts is a QuotaExceededError and evicts nothing', async () => {
    const s = await LanguageModel.create({ ...greedy, initialPrompts: [SYSTEM] });
    await s.prompt('Natasha');
    const usage = s.contextUsage;
    const huge = 'Prince Andrew rode on. '.repeat(80);
    const e = (await rejection(s.prompt(huge))) as DOMException & { requested: number; quota: number };
    expect(e.name).toBe('QuotaExceededError');
    expect(e).toBeInstanceOf(DOMException);
    expect(e.quota).toBe(256);
    // The spec's requested: the context that cannot be evicted (initial prompts) plus the input alone.
    expect(e.requested).toBe((await s.measureContextUsage([SYSTEM])) + (await s.measureContextUsage(huge)));
    expect(e.requested).toBeGreaterThan(256);
    expect(s.contextUsage).toBe(usage);
    const tooBig = (await rejection(LanguageModel.create({ initialPrompts: [{ role: 'user', content: huge }] }))) as DOMException & { requested: number };
    expect(tooBig.name).toBe('QuotaExceededError');
    expect(tooBig.requested).toBeGreaterThan(256);
    s.destroy();
  });

  it('misuse gets the exception the spec names', async () => {
    const s = await LanguageModel.create(greedy);
    await s.append('hello');
    expect(await rejection(s.prompt([{ role: 'system', content: 'late' }]))).toBeInstanceOf(TypeError);
    expect((await rejection(s.prompt([{ role: 'assistant', content: 'a', prefix: true }, { role: 'user', content: 'b' }]))).name).toBe('SyntaxError');
    expect((await rejection(s.prompt([{ role: 'user', content: 'a', prefix: true }]))).name).toBe('SyntaxError');
    expect((await rejection(s.prompt([{ role: 'user', content: [{ type: 'image', value: new Uint8Array(4) }] }]))).name).toBe('NotSupportedError');
    expect((await rejection(s.prompt([{ role: 'assistant', content: [{ type: 'audio', value: new Uint8Array(4) }] }]))).name).toBe('NotSupportedError');
    expect(await rejection(s.prompt([{ role: 'user', content: [{ type: 'text', value: 5 as unknown as string }] }]))).toBeInstanceOf(TypeError);
    expect(await rejection(s.prompt([{ role: 'robot' as 'user', content: 'x' }]))).toBeInstanceOf(TypeError);
    expect(await rejection(s.prompt('x', { omitResponseConstraintInput: true }))).toBeInstanceOf(TypeError);
    expect(await rejection(s.prompt('x', { responseConstraint: 5 as unknown as object }))).toBeInstanceOf(TypeError);
    expect(await rejection(s.measureContextUsage('x', { omitResponseConstraintInput: true }))).toBeInstanceOf(TypeError);
    expect((await rejection(LanguageModel.create({ expectedInputs: [{ type: 'audio' }] }))).name).toBe('NotSupportedError');
    // topK / temperature: ignored as in web pages (attributes undefined), checked with legacySamplingParams.
    const ignored = await LanguageModel.create({ samplingMode: 'creative', temperature: -1, topK: 0 });
    expect([ignored.topK, ignored.temperature, ignored.samplingMode]).toEqual([undefined, undefined, 'creative']);
    ignored.destroy();
    const Legacy = createLanguageModel({ engine, legacySamplingParams: true });
    expect(await rejection(Legacy.create({ samplingMode: 'creative', temperature: 1 }))).toBeInstanceOf(TypeError);
    expect(await rejection(Legacy.create({ temperature: -1 }))).toBeInstanceOf(RangeError);
    expect(await rejection(Legacy.create({ topK: 0 }))).toBeInstanceOf(RangeError);
    expect(await rejection(LanguageModel.create({ tools: [{ name: 'f', description: 'd', inputSchema: {} } as never] }))).toBeInstanceOf(TypeError);
    const tools = [{ name: 'f', description: 'd', inputSchema: { type: 'object' }, execute: async () => 'ok' }];
    // Tools need tool calls from the engine: without them (no structured output yet), NotSupportedError.
    const toolsResult = await LanguageModel.create({ tools }).then((t) => (t.destroy(), null), (e: Error) => e);
    if (toolsResult) {
      expect(toolsResult.name).toBe('NotSupportedError');
      expect(toolsResult.message).toMatch(/tools are not supported by this engine/);
    }
    expect(await LanguageModel.availability({ expectedInputs: [{ type: 'tool-response' }], expectedOutputs: [{ type: 'tool-call' }] })).toBe('available');
    expect(await LanguageModel.availability({ expectedOutputs: [{ type: 'tool-response' }] })).toBe('unavailable');
    const monitorError = new Error('monitor threw');
    expect(await rejection(LanguageModel.create({ monitor: () => { throw monitorError; } }))).toBe(monitorError);
    expect(() => new (LanguageModel as unknown as new () => LanguageModelSession)()).toThrow(TypeError);
    const clamped = await Legacy.create({ topK: 1000.7, temperature: Infinity });
    expect([clamped.topK, clamped.temperature]).toEqual([128, 2]);
    s.destroy();
    clamped.destroy();
  });

  // Engine sessions: clones and later prompts reuse the KV create(), append() and prompt() left pinned.
  it('8 clones of one context start with no prefill of it: they share its pinned pages (engine sessions)', async () => {
    const context = 'Prince Andrew rode on through the long night toward the village. '.repeat(8);
    const base = await LanguageModel.create({ ...greedy, initialPrompts: [{ role: 'system', content: context }] });
    const cached = () => engine.core!.metrics.snapshot().cachedPromptTokens;
    const before = cached();
    const pagesBefore = engine.metrics().pagesUsed;
    const clones = await Promise.all(Array.from({ length: 8 }, () => base.clone()));
    // A clone computes nothing and takes no page of its own.
    expect(engine.metrics().pagesUsed).toBe(pagesBefore);
    const texts = await Promise.all(clones.map((c, i) => c.prompt(`Chapter ${i}`)));
    expect(texts.every((t) => t.length > 0)).toBe(true);
    // Each clone's prompt took the whole context (initial prompts) from its session.
    expect(cached() - before).toBeGreaterThanOrEqual(8 * base.contextUsage);
    // append() computed its messages into the session: the next prompt takes all of it.
    await base.append('Natasha danced.');
    const appended = base.contextUsage;
    const beforePrompt = cached();
    await base.prompt('Pierre');
    expect(cached() - beforePrompt).toBe(appended);
    base.destroy();
    clones.forEach((c) => c.destroy());
    await poolIsEmpty();
  });

  it('on an engine without sessions, calls reuse the context through the prefix cache and pin nothing', async () => {
    const plain = createLanguageModel({ engine: { chat: engine.chat, tokenize: (r) => engine.tokenize(r) }, maxResponseTokens: 6 });
    const long = { role: 'system' as const, content: 'War and Peace, the novel by Leo Tolstoy, in many volumes.' };
    const onSessions = await LanguageModel.create({ ...greedy, initialPrompts: [long] });
    const s = await plain.create({ ...greedy, initialPrompts: [long] });
    expect(engine.metrics().sessions.open).toBe(1);
    const cached = () => engine.core!.metrics.snapshot().cachedPromptTokens;
    const before = cached();
    const text = await s.prompt('Prince Andrew looked at');
    expect(cached()).toBeGreaterThan(before);
    expect(text).toBe((await onSessions.prompt('Prince Andrew looked at')).slice(0, text.length));
    expect(engine.metrics().sessions.open).toBe(1);
    s.destroy();
    onSessions.destroy();
    await poolIsEmpty();
  });

  it('responseConstraint asks the engine for JSON: NotSupportedError until the engine has structured output, else JSON', async () => {
    const s = await LanguageModel.create(greedy);
    // Bounded, as a rating is: an unbounded number lets a prose model write digits until max_tokens.
    const schema = { type: 'object', properties: { rating: { type: 'integer', minimum: 1, maximum: 5 } }, required: ['rating'] };
    const withSchema = await s.measureContextUsage('Rate it', { responseConstraint: schema });
    expect(withSchema).toBeGreaterThan(await s.measureContextUsage('Rate it', { responseConstraint: schema, omitResponseConstraintInput: true }));
    const result = await s.prompt('Rate it', { responseConstraint: schema }).then((text) => ({ text }), (e: Error) => ({ error: e }));
    if ('error' in result) {
      expect(result.error.name).toBe('NotSupportedError');
      expect(result.error.message).toMatch(/response_format/);
    } else {
      expect(typeof JSON.parse(result.text).rating).toBe('number');
    }
    expect((await rejection(s.prompt('x', { responseConstraint: /a+/ }))).name).toBe('NotSupportedError');
    s.destroy();
    await poolIsEmpty();
  });
});

describe('LanguageModel when the engine refuses or loses its sessions (maxSessions 2)', () => {
  let engine: Engine;
  beforeAll(async () => {
    engine = await shippedEngine({ maxSessions: 2 });
  });
  afterAll(() => engine?.destroy());

  it('sessions and clones past the limit run on the prefix cache instead of failing, with the same greedy answers', async () => {
    const LanguageModel = createLanguageModel({ engine, maxResponseTokens: 8 });
    const base = await LanguageModel.create({ ...greedy, initialPrompts: [SYSTEM] });
    const pinned = await base.clone();
    expect(engine.metrics().sessions.open).toBe(2);
    const unpinnedClone = await base.clone();
    const unpinnedNew = await LanguageModel.create({ ...greedy, initialPrompts: [SYSTEM] });
    expect(engine.metrics().sessions.open).toBe(2);
    const expected = await pinned.prompt('Pierre');
    expect(await unpinnedClone.prompt('Pierre')).toBe(expected);
    expect(await unpinnedNew.prompt('Pierre')).toBe(expected);
    expect(await unpinnedClone.prompt('Natasha')).toBe(await pinned.prompt('Natasha'));
    for (const s of [base, pinned, unpinnedClone, unpinnedNew]) s.destroy();
    await engine.core!.idle();
    expect(engine.metrics().sessions.open).toBe(0);
    expect(engine.metrics().pagesUsed).toBe(0);
  });

  it('a session whose engine session is gone (expired, or lost with a reload) goes on without it, with the same greedy answers', async () => {
    const created: string[] = [];
    const sessions = engine.sessions;
    const watched = {
      chat: engine.chat, tokenize: (r: Parameters<Engine['tokenize']>[0]) => engine.tokenize(r),
      sessions: { ...sessions, create: async (...a: Parameters<typeof sessions.create>) => {
        const s = await sessions.create(...a);
        created.push(s.id);
        return s;
      } },
    };
    const LanguageModel = createLanguageModel({ engine: watched, maxResponseTokens: 8 });
    const reference = await createLanguageModel({ engine, maxResponseTokens: 8 }).create({ ...greedy, initialPrompts: [SYSTEM] });
    const s = await LanguageModel.create({ ...greedy, initialPrompts: [SYSTEM] });
    expect(created).toHaveLength(1);
    const expected = [await reference.prompt('Pierre'), await reference.prompt('Natasha')];
    reference.destroy();
    expect(await engine.sessions.destroy(created[0])).toBe(true); // behind the session's back
    expect(await s.prompt('Pierre')).toBe(expected[0]);
    const fork = await s.clone();
    expect(await fork.prompt('Natasha')).toBe(expected[1]);
    await s.append('Andrew');
    expect(engine.metrics().sessions.open).toBe(0);
    s.destroy();
    fork.destroy();
    await engine.core!.idle();
    expect(engine.metrics().pagesUsed).toBe(0);
  });
});
