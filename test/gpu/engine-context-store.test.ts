// The context store through the engine (issue 14), on the shipped model in Node (directory
// backend): a conversation's pages are written through while it runs; an engine opened afresh
// on the same directory restores them for the next turn instead of prefilling them (counted as
// cached_tokens) and answers exactly as an uninterrupted run: the same tokens and logprobs with
// q8_0 live KV (q8_0 records are copied byte for byte), greedy agreement up to a near tie with
// f16 live KV (q8_0 records are dequantized). A corrupted record is dropped with a warning and a
// metric and the request prefills; a budget smaller than a record, or a full disk (ENOSPC),
// stops writing and serving goes on.
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChatCompletion, ChatCompletionMessageParam, Engine, EngineOptions } from '../../src/index.js';
import { decodeRecord, DirectoryBackend, type StoreWarning } from '../../src/persist/index.js';
import { shippedEngine } from '../helpers/engine.js';

const MEMORY = 4 * 2 ** 20;
const PAGE = 16;
const TURNS = ['Prince Andrew looked at the old count', 'Natasha ran into the room and said', 'The old count said to Pierre', 'Pierre was glad and asked'];

type Message = ChatCompletionMessageParam;

async function turn(engine: Engine, history: Message[], text: string): Promise<{ reply: ChatCompletion; history: Message[] }> {
  const messages = [...history, { role: 'user' as const, content: text }];
  const reply = await engine.chat.completions.create({ messages, temperature: 0, max_tokens: 12, logprobs: true, top_logprobs: 2 });
  return { reply, history: [...messages, { role: 'assistant' as const, content: reply.choices[0].message.content ?? '' }] };
}

async function converse(engine: Engine, turns: string[], history: Message[] = []): Promise<{ replies: ChatCompletion[]; history: Message[] }> {
  const replies: ChatCompletion[] = [];
  for (const text of turns) {
    const r = await turn(engine, history, text);
    replies.push(r.reply);
    history = r.history;
  }
  return { replies, history };
}

const tokensOf = (r: ChatCompletion) => r.choices[0].logprobs!.content!.map((t) => t.token);
const logprobsOf = (r: ChatCompletion) => r.choices[0].logprobs!.content!.map((t) => [t.logprob, ...t.top_logprobs.map((a) => a.logprob)]);
const cachedOf = (r: ChatCompletion) => r.usage.prompt_tokens_details?.cached_tokens ?? 0;

describe('engine context store (directory)', () => {
  const dirs: string[] = [];
  const engines: Engine[] = [];
  const open = async (options: EngineOptions) => {
    const e = await shippedEngine({ kvMemoryBytes: MEMORY, ...options });
    engines.push(e);
    return e;
  };
  const close = async (e: Engine) => {
    await e.destroy();
    engines.splice(engines.indexOf(e), 1);
  };
  const tempDir = async () => {
    const d = await mkdtemp(join(tmpdir(), 'wgserve-store-'));
    dirs.push(d);
    return d;
  };
  /** The uninterrupted run (no store), per live format. */
  const reference = new Map<string, { replies: ChatCompletion[]; history: Message[] }>();
  /** A directory holding the first three turns' pages, written by an engine that is gone. */
  const stored = new Map<string, string>();

  beforeAll(async () => {
    for (const kvFormat of ['q8_0', 'f16'] as const) {
      const r = await open({ kvFormat });
      reference.set(kvFormat, await converse(r, TURNS));
      await close(r);
      const dir = await tempDir();
      const writer = await open({ kvFormat, contextStore: { kind: 'directory', path: dir } });
      const { replies } = await converse(writer, TURNS.slice(0, 3));
      // The writing run is itself the reference's first three turns.
      expect(replies.map(tokensOf)).toEqual(reference.get(kvFormat)!.replies.slice(0, 3).map(tokensOf));
      const usage = await writer.contexts.usage();
      await close(writer);
      expect(usage!.format).toBe('q8_0');
      stored.set(kvFormat, dir);
    }
  });

  afterAll(async () => {
    for (const e of engines) await e.destroy();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  it('restores a conversation after the engine is gone: q8_0 live KV gives the same tokens and logprobs', async () => {
    const want = reference.get('q8_0')!;
    const history = want.history.slice(0, 6);
    const e = await open({ kvFormat: 'q8_0', contextStore: { kind: 'directory', path: stored.get('q8_0')! } });
    expect((await e.contexts.usage())!.records).toBeGreaterThan(0);
    const { reply } = await turn(e, history, TURNS[3]);
    const prompt = reply.usage.prompt_tokens;
    const s = e.metrics().contextStore!;
    expect(s.restores).toBe(1);
    expect(s.pagesRestored).toBeGreaterThan(0);
    expect(s.recordsDropped).toBe(0);
    // Everything but the last partial page (and the last token) came from the store.
    expect(cachedOf(reply)).toBe(s.pagesRestored * PAGE);
    expect(cachedOf(reply)).toBe(Math.floor((prompt - 1) / PAGE) * PAGE);
    expect(tokensOf(reply)).toEqual(tokensOf(want.replies[3]));
    expect(logprobsOf(reply)).toEqual(logprobsOf(want.replies[3]));
    expect(await e.runtimeStatsText()).toMatch(/context store: \d+ records .* \d+ restored for 1 requests, 0 dropped as bad/);
  });

  it('restores into f16 live KV (q8_0 records dequantized): greedy tokens agree up to a near tie', async () => {
    const want = reference.get('f16')!;
    const e = await open({ kvFormat: 'f16', contextStore: { kind: 'directory', path: stored.get('f16')! } });
    const { reply } = await turn(e, want.history.slice(0, 6), TURNS[3]);
    expect(e.metrics().contextStore!.pagesRestored).toBeGreaterThan(0);
    expect(cachedOf(reply)).toBe(Math.floor((reply.usage.prompt_tokens - 1) / PAGE) * PAGE);
    const ref = want.replies[3].choices[0].logprobs!.content!;
    const tie = ref.findIndex((t) => t.top_logprobs.length > 1 && Math.exp(t.top_logprobs[1].logprob - t.top_logprobs[0].logprob) >= 0.99);
    const horizon = tie < 0 ? ref.length : tie;
    expect(horizon).toBeGreaterThan(0);
    expect(tokensOf(reply).slice(0, horizon)).toEqual(tokensOf(want.replies[3]).slice(0, horizon));
  });

  it('drops a corrupted record with a warning and a metric, restores the pages before it, and answers the same', async () => {
    const want = reference.get('q8_0')!;
    const dir = await tempDir();
    await cp(stored.get('q8_0')!, dir, { recursive: true });
    const warnings: StoreWarning[] = [];
    const e = await open({ kvFormat: 'q8_0', contextStore: { kind: 'directory', path: dir, onWarning: (w) => warnings.push(w) } });
    const history = want.history.slice(0, 6);
    const messages = [...history, { role: 'user' as const, content: TURNS[3] }];
    const { tokens } = await e.tokenize({ messages });
    const key = e.core!.kvManager.cache.pageHash(tokens, '', [], 2);
    const file = join(dir, `${key}.wgkv`);
    const bytes = await readFile(file);
    bytes[bytes.length - 100] ^= 0x40;
    await writeFile(file, bytes);

    const { reply } = await turn(e, history, TURNS[3]);
    expect(reply.usage.prompt_tokens).toBe(tokens.length);
    expect(warnings.filter((w) => w.kind === 'record-dropped').map((w) => (w as { key: string }).key)).toEqual([key]);
    const s = e.metrics().contextStore!;
    expect(s.recordsDropped).toBe(1);
    expect(s.pagesRestored).toBe(2);
    expect(cachedOf(reply)).toBe(2 * PAGE);
    expect(tokensOf(reply)).toEqual(tokensOf(want.replies[3]));
    expect(logprobsOf(reply)).toEqual(logprobsOf(want.replies[3]));
    // The bad record was deleted; the page, computed again, was written again, whole.
    const tier = e.core!.tier!;
    await tier.drain();
    const again = decodeRecord(new Uint8Array(await readFile(file)), tier.store.identity, key);
    expect(Array.from(again.tokens)).toEqual(tokens.slice(2 * PAGE, 3 * PAGE));
  });

  it('a budget smaller than one record writes nothing, and serving goes on', async () => {
    const want = reference.get('q8_0')!;
    const e = await open({ kvFormat: 'q8_0', contextStore: { kind: 'directory', path: await tempDir(), maxBytes: 1000 } });
    const { replies } = await converse(e, TURNS.slice(0, 2));
    expect(replies.map(tokensOf)).toEqual(want.replies.slice(0, 2).map(tokensOf));
    await e.core!.tier!.drain();
    const s = (await e.contexts.usage())!;
    expect(s.records).toBe(0);
    expect(s.pagesWritten).toBe(0);
  });

  it('a full disk (ENOSPC) stops writing with a warning, and serving goes on', async () => {
    const want = reference.get('q8_0')!;
    const dir = await tempDir();
    const backend = await DirectoryBackend.open(dir);
    const commit = backend.commit.bind(backend);
    let commits = 0;
    // The first write lands; every later one finds the disk full, as a real full disk answers.
    backend.commit = async (puts, deletes) => {
      if (puts.length && commits++ > 0) throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
      return commit(puts, deletes);
    };
    const warnings: StoreWarning[] = [];
    const e = await open({ kvFormat: 'q8_0', contextStore: { kind: 'directory', backend, onWarning: (w) => warnings.push(w) } });
    const { replies } = await converse(e, TURNS.slice(0, 3));
    expect(replies.map(tokensOf)).toEqual(want.replies.slice(0, 3).map(tokensOf));
    await e.core!.tier!.drain();
    const s = (await e.contexts.usage())!;
    expect(s.writing).toBe(false);
    expect(s.writeErrors).toBe(1);
    expect(s.records).toBeGreaterThan(0);
    expect(warnings.map((w) => w.kind)).toEqual(['writes-stopped']);
    // Stopped: later pages are not even queued, and requests still run.
    const { reply } = await turn(e, want.history.slice(0, 6), TURNS[3]);
    expect(tokensOf(reply)).toEqual(tokensOf(want.replies[3]));
    expect((await e.contexts.usage())!.writeErrors).toBe(1);
  });

  it('contexts.list / delete / clear manage the records', async () => {
    const dir = await tempDir();
    await cp(stored.get('q8_0')!, dir, { recursive: true });
    const e = await open({ kvFormat: 'q8_0', contextStore: { kind: 'directory', path: dir } });
    const list = await e.contexts.list();
    expect(list.length).toBeGreaterThan(1);
    await e.contexts.delete(list[0].key);
    expect((await e.contexts.list()).map((r) => r.key)).toEqual(list.slice(1).map((r) => r.key));
    await e.contexts.clear();
    expect((await e.contexts.usage())!.records).toBe(0);
    const plain = await open({ kvFormat: 'q8_0' });
    expect(await plain.contexts.usage()).toBeNull();
    await expect(plain.contexts.list()).rejects.toThrow(/no context store/);
  });
});
