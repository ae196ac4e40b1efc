// Persisted contexts in headless Chromium (issue 14): the engine in a Web Worker keeps its pages
// in IndexedDB by default (no option given). A page runs a 3-turn conversation and reloads; the
// 4th turn, on a new worker and engine, restores the history from IndexedDB (cached_tokens) and
// answers with the tokens and logprobs of an uninterrupted run (q8_0 live KV: the stored q8_0
// bytes are the pages). A record corrupted in IndexedDB is dropped (metric) and the request
// prefills from there, with the same answer. A conversation kept through the worker
// (contexts.keep) is still kept after a reload and restored. A tiny quota (CDP) bounds the
// budget, and storage running out stops the writes while serving goes on.
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openBrowserSession, openPersistentSession, type BrowserSession } from '../helpers/browser.js';
import type { Message, Turn } from './pages/persist-page.js';

const PAGE = 16;
const TURNS = ['Prince Andrew looked at the old count', 'Natasha ran into the room and said', 'The old count said to Pierre', 'Pierre was glad and asked'];

/** The uninterrupted run (its own cache_salt, so it shares no record with the conversation). */
const reference: Turn[] = [];

describe('persisted contexts in the browser (Web Worker, IndexedDB)', () => {
  let session: BrowserSession;
  let context: BrowserContext;
  let page: Page;
  let origin = '';
  const pageErrors: string[] = [];
  let history: Message[] = [];

  const chat = (messages: Message[], salt?: string) => page.evaluate(([m, s]) => window.ps.chat(m, s), [messages, salt] as const);
  const reopen = async () => {
    await page.reload();
    await page.waitForFunction(() => document.getElementById('status')?.textContent === 'ready');
    expect(await page.evaluate(() => window.ps.load())).toBe('wg-tolstoy-q8_0');
  };
  const nextTurn = () => [...history.slice(0, 6), { role: 'user' as const, content: TURNS[3] }];

  beforeAll(async () => {
    session = await openBrowserSession();
    ({ context, origin } = session);
    page = await context.newPage();
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await page.goto(`${origin}/test/e2e/pages/persist.html`);
    await page.evaluate(() => window.ps.load());
    let messages: Message[] = [];
    for (const text of TURNS) {
      messages = [...messages, { role: 'user', content: text }];
      const r = await chat(messages, 'reference');
      reference.push(r);
      messages = [...messages, { role: 'assistant', content: r.content }];
    }
    history = messages;
  });

  afterAll(async () => {
    await page?.evaluate(() => window.ps.engine?.terminate()).catch(() => {});
    await session?.close();
  });

  it('a 3-turn conversation survives a reload: the 4th turn restores the history and answers as an uninterrupted run', async () => {
    let messages: Message[] = [];
    for (const [i, text] of TURNS.slice(0, 3).entries()) {
      messages = [...messages, { role: 'user', content: text }];
      const r = await chat(messages);
      expect(r.tokens).toEqual(reference[i].tokens);
      messages = [...messages, { role: 'assistant', content: r.content }];
    }
    expect(await page.evaluate(() => window.ps.settle())).toBeGreaterThan(0);
    await reopen();
    const fourth = await chat(nextTurn());
    expect(fourth.cached).toBe(Math.floor((fourth.prompt - 1) / PAGE) * PAGE);
    expect(fourth.cached).toBeGreaterThan(3 * PAGE);
    expect(fourth.tokens).toEqual(reference[3].tokens);
    expect(fourth.logprobs).toEqual(reference[3].logprobs);
    const s = (await page.evaluate(() => window.ps.metrics())).contextStore!;
    expect(s).toMatchObject({ kind: 'indexeddb', format: 'q8_0', restores: 1, recordsDropped: 0 });
    expect(s.pagesRestored * PAGE).toBe(fourth.cached);
    expect(pageErrors).toEqual([]);
  });

  it('drops a record corrupted in IndexedDB, restores the pages before it, and answers the same', async () => {
    await reopen();
    const tokens = await page.evaluate(([m]) => window.ps.promptTokens(m), [nextTurn()] as const);
    // The same token ids under the reference's salt are another record: both are corrupted, one is read.
    expect(await page.evaluate(([t]) => window.ps.corruptRecordsOf(t), [tokens.slice(2 * PAGE, 3 * PAGE)] as const)).toBe(2);
    const fourth = await chat(nextTurn());
    const s = (await page.evaluate(() => window.ps.metrics())).contextStore!;
    expect(s.recordsDropped).toBe(1);
    expect(s.pagesRestored).toBe(2);
    expect(fourth.cached).toBe(2 * PAGE);
    expect(fourth.tokens).toEqual(reference[3].tokens);
    expect(fourth.logprobs).toEqual(reference[3].logprobs);
  });

  it('keeps a conversation through the worker (contexts.keep): the keep outlives a reload and the next turn restores it', async () => {
    const kept = await page.evaluate(([m]) => window.ps.keep(m, 'kept'), [history.slice(0, 6)] as const);
    expect(kept.tokens % PAGE).toBe(0);
    expect(kept.tokens).toBeGreaterThan(3 * PAGE);
    await reopen();
    expect(await page.evaluate(() => window.ps.kept())).toEqual({ ids: [kept.id], records: kept.tokens / PAGE });
    const fourth = await chat(nextTurn(), 'kept');
    expect(fourth.cached).toBe(kept.tokens);
    expect(fourth.tokens).toEqual(reference[3].tokens);
    expect(fourth.logprobs).toEqual(reference[3].logprobs);
  });
});

describe('persisted contexts in the browser: a full origin', () => {
  let session: Omit<BrowserSession, 'browser'> | undefined;
  let profile = '';
  afterAll(async () => {
    await session?.close();
    if (profile) await rm(profile, { recursive: true, force: true });
  });

  it('a tiny quota (CDP): the write that finds storage full stops the writes, and serving goes on', async () => {
    // A profile on disk: off-the-record storage ignores quota overrides. The quota is set before
    // the engine opens its database (an open connection keeps the quota it saw). This Chromium
    // does not show the override in navigator.storage.estimate(), so the store learns of it from
    // the QuotaExceededError (the budget from estimate() is unit-tested: test/unit/context-tier.test.ts).
    profile = await mkdtemp(join(tmpdir(), 'wgserve-profile-'));
    session = await openPersistentSession(profile);
    const { context, origin } = session;
    const page = await context.newPage();
    await page.goto(`${origin}/test/e2e/pages/persist.html`);
    const cdp = await context.newCDPSession(page);
    await cdp.send('Storage.overrideQuotaForOrigin', { origin, quotaSize: 1 });
    await page.evaluate(() => window.ps.load());
    const chat = (messages: Message[]) => page.evaluate(([m]) => window.ps.chat(m), [messages] as const);
    const first = await chat([{ role: 'user', content: TURNS[0] }]);
    expect(first.tokens).toEqual(reference[0].tokens);
    await page.evaluate(() => window.ps.settle());
    const s = (await page.evaluate(() => window.ps.metrics())).contextStore!;
    expect(s.writing).toBe(false);
    expect(s.writeErrors).toBe(1);
    expect(s.pagesWritten).toBe(0);
    // Serving goes on, with the same answers; nothing more is tried.
    const history = [{ role: 'user' as const, content: TURNS[0] }, { role: 'assistant' as const, content: reference[0].content }, { role: 'user' as const, content: TURNS[1] }];
    expect((await chat(history)).tokens).toEqual(reference[1].tokens);
    await page.evaluate(() => window.ps.settle());
    expect((await page.evaluate(() => window.ps.metrics())).contextStore!.writeErrors).toBe(1);
  });
});
