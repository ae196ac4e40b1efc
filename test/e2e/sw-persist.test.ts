// Persisted contexts through the Service Worker (issue 14), in headless Chromium: a tab holds a
// 3-turn conversation with the Service Worker's API; the worker is stopped through CDP (as the
// browser stops an idle one); the 4th turn starts a new engine, which restores the history from
// IndexedDB (cached_tokens, /metrics) and answers with the tokens and logprobs of an
// uninterrupted run (kvFormat q8_0 live: the stored q8_0 bytes are the pages).
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openBrowserSession, type BrowserSession } from '../helpers/browser.js';
import { parsePrometheus, promValue } from '../helpers/prometheus.js';

const PAGE = 16;
const TURNS = ['Prince Andrew looked at the old count', 'Natasha ran into the room and said', 'The old count said to Pierre', 'Pierre was glad and asked'];

interface Message {
  role: 'user' | 'assistant';
  content: string;
}

interface Reply {
  started: string;
  content: string;
  tokens: string[];
  logprobs: number[][];
  prompt: number;
  cached: number;
}

describe('persisted contexts through the Service Worker (headless Chromium)', () => {
  let session: BrowserSession;
  let tab: Page;

  const chat = (messages: Message[], salt?: string): Promise<Reply> => tab.evaluate(async ([m, s]) => {
    const body = JSON.stringify({ messages: m, temperature: 0, max_tokens: 12, logprobs: true, top_logprobs: 2, cache_salt: s });
    const r = await fetch('/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    const j = await r.json();
    if (r.status !== 200) throw new Error(JSON.stringify(j));
    const lp = j.choices[0].logprobs.content as { token: string; logprob: number; top_logprobs: { logprob: number }[] }[];
    return {
      started: r.headers.get('x-wgserve-engine-started') ?? '',
      content: j.choices[0].message.content as string,
      tokens: lp.map((t) => t.token),
      logprobs: lp.map((t) => [t.logprob, ...t.top_logprobs.map((a) => a.logprob)]),
      prompt: j.usage.prompt_tokens as number,
      cached: (j.usage.prompt_tokens_details?.cached_tokens ?? 0) as number,
    };
  }, [messages, salt] as const);

  const metric = async (name: string) => promValue(parsePrometheus(await tab.evaluate(async () => (await fetch('/metrics')).text())), name);

  const converse = async (turns: string[], salt?: string) => {
    let messages: Message[] = [];
    const replies: Reply[] = [];
    for (const text of turns) {
      messages = [...messages, { role: 'user', content: text }];
      const r = await chat(messages, salt);
      replies.push(r);
      messages = [...messages, { role: 'assistant', content: r.content }];
    }
    return { replies, messages };
  };

  beforeAll(async () => {
    session = await openBrowserSession();
    tab = await session.context.newPage();
    await tab.goto(`${session.origin}/test/e2e/pages/sw.html`);
    await tab.evaluate(async () => {
      await navigator.serviceWorker.register('/workers/service-worker.ts?kvFormat=q8_0', { type: 'module', scope: '/' });
      await navigator.serviceWorker.ready;
      if (!navigator.serviceWorker.controller) await new Promise((resolve) => navigator.serviceWorker.addEventListener('controllerchange', resolve, { once: true }));
    });
  });
  afterAll(() => session?.close());

  it('a conversation continued after the worker was stopped restores its history and answers as an uninterrupted run', async () => {
    const reference = await converse(TURNS, 'reference');
    const { replies, messages } = await converse(TURNS.slice(0, 3));
    expect(replies.map((r) => r.tokens)).toEqual(reference.replies.slice(0, 3).map((r) => r.tokens));
    expect(await metric('wgserve_context_store_pages_written_total')).toBeGreaterThan(0);
    while ((await metric('wgserve_context_store_pending_writes')) !== 0) await new Promise((resolve) => setTimeout(resolve, 50));

    const cdp = await session.context.newCDPSession(tab);
    await cdp.send('ServiceWorker.enable');
    await cdp.send('ServiceWorker.stopAllWorkers');

    const fourth = await chat([...messages, { role: 'user', content: TURNS[3] }]);
    // A new engine (the worker really stopped) took the history from IndexedDB.
    expect(Number(fourth.started)).toBeGreaterThan(Number(replies[2].started));
    expect(fourth.cached).toBe(Math.floor((fourth.prompt - 1) / PAGE) * PAGE);
    expect(fourth.cached).toBeGreaterThan(3 * PAGE);
    expect(fourth.tokens).toEqual(reference.replies[3].tokens);
    expect(fourth.logprobs).toEqual(reference.replies[3].logprobs);
    expect(await metric('wgserve_context_store_restores_total')).toBe(1);
    expect(await metric('wgserve_context_store_pages_restored_total')).toBe(fourth.cached / PAGE);
  });
});
