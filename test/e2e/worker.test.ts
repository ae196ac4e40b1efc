// The engine in a Web Worker, in headless Chromium (WebGPU on SwiftShader): load progress reaches
// the page, greedy text equals the engine's in Node, chunks stream across the boundary while the
// page's main thread keeps running, abort stops the request, errors keep their OpenAI shape.
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../../src/index.js';
import { openBrowserSession, type BrowserSession } from '../helpers/browser.js';
import { shippedEngine } from '../helpers/engine.js';

const PROMPT = 'Prince Andrew looked at';

describe('engine in a Web Worker (headless Chromium)', () => {
  let session: BrowserSession;
  let context: BrowserContext;
  let page: Page;
  let node: Engine;
  let origin = '';
  const pageErrors: string[] = [];
  beforeAll(async () => {
    session = await openBrowserSession();
    ({ context, origin } = session);
    page = await context.newPage();
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await page.goto(`${origin}/test/e2e/pages/worker.html`);
    node = await shippedEngine();
  });
  afterAll(async () => {
    await page?.evaluate(() => window.wg.engine?.terminate());
    await session?.close();
    await node?.destroy();
  });

  it('loads the shipped model from its URL in the worker, reporting progress to the page', async () => {
    expect(await page.evaluate(() => window.wg.load())).toBe('wg-tolstoy-q8_0');
    const progress = await page.evaluate(() => window.wg.progress);
    expect(progress.length).toBeGreaterThan(1);
    expect(progress.at(-1)).toMatchObject({ progress: 1 });
    expect(progress.at(-1)!.text).toMatch(/^Loaded /);
  });

  it('a greedy chat completion equals the engine in Node', async () => {
    const inWorker = await page.evaluate(([p]) => window.wg.chat(p, 24), [PROMPT] as const);
    const inNode = await node.chat.completions.create({ messages: [{ role: 'user', content: PROMPT }], temperature: 0, max_tokens: 24 });
    expect(inWorker).toBe(inNode.choices[0].message.content);
    expect(inWorker.length).toBeGreaterThan(20);
  });

  it('streams chunks as they come while the main thread keeps running', async () => {
    const whole = await page.evaluate(([p]) => window.wg.chat(p, 32), [PROMPT] as const);
    const r = await page.evaluate(([p]) => window.wg.stream(p, 32), [PROMPT] as const);
    expect(r.text).toBe(whole);
    expect(r.finishReason).toBe('length');
    expect(r.chunks).toBeGreaterThan(30);
    // Page timers ran between chunks: generation never blocked the main thread.
    expect(r.ticksDuringStream).toBeGreaterThan(10);
  });

  it('passes cache_salt to the worker and returns cached_tokens and the prefix-cache metrics', async () => {
    const r = await page.evaluate(async () => {
      const engine = window.wg.engine!;
      const body = {
        messages: [
          { role: 'system' as const, content: 'You are a careful reader of War and Peace who answers in one short sentence.' },
          { role: 'user' as const, content: 'Who is Pierre?' },
        ],
        temperature: 0, max_tokens: 2, cache_salt: 'worker-test',
      };
      const a = await engine.chat.completions.create(body);
      const b = await engine.chat.completions.create(body);
      const m = await engine.metrics();
      return { prompt: a.usage.prompt_tokens, cached: [a.usage.prompt_tokens_details.cached_tokens, b.usage.prompt_tokens_details.cached_tokens], hits: m.prefixCache.hitTokens };
    });
    expect(r.cached).toEqual([0, Math.floor((r.prompt - 1) / 16) * 16]);
    expect(r.hits).toBeGreaterThanOrEqual(r.cached[1]);
  });

  it('aborting the signal stops the request in the worker', async () => {
    const r = await page.evaluate(([p]) => window.wg.stream(p, 200, 3), [PROMPT] as const);
    expect(r.finishReason).toBe('abort');
    expect(r.chunks).toBeLessThan(20);
    // The worker's engine is free again: the next request runs to its end.
    expect((await page.evaluate(([p]) => window.wg.stream(p, 8), [PROMPT] as const)).finishReason).toBe('length');
  });

  it('keeps the model in the browser cache: a new page loads it without fetching; it can be listed and deleted', async () => {
    const modelUrl = `${origin}/models/wg-tolstoy-q8_0.gguf`;
    expect(await page.evaluate(() => window.wg.cached())).toEqual([modelUrl]);
    const second = await context.newPage();
    const fetched: string[] = [];
    second.on('request', (r) => void (r.url().endsWith('.gguf') && fetched.push(r.url())));
    try {
      await second.goto(`${origin}/test/e2e/pages/worker.html`);
      expect(await second.evaluate(() => window.wg.load())).toBe('wg-tolstoy-q8_0');
      expect(fetched).toEqual([]);
      expect(await second.evaluate(([p]) => window.wg.chat(p, 24), [PROMPT] as const)).toBe(await page.evaluate(([p]) => window.wg.chat(p, 24), [PROMPT] as const));
      expect(await second.evaluate((u) => window.wg.engine!.deleteCachedModel(u), modelUrl)).toBe(true);
      expect(await second.evaluate(() => window.wg.cached())).toEqual([]);
    } finally {
      await second.evaluate(() => window.wg.engine?.terminate());
      await second.close();
    }
  });

  it('a bad URL or a file that is not GGUF fails with a clear error and is not cached; the engine reloads after', async () => {
    expect(await page.evaluate((u) => window.wg.loadError(u), `${origin}/models/missing.gguf`)).toMatch(/missing\.gguf: HTTP 404/);
    expect(await page.evaluate((u) => window.wg.loadError(u), `${origin}/index.html`)).toMatch(/index\.html.*(GGUF|magic)/i);
    expect(await page.evaluate(() => window.wg.cached())).toEqual([]);
    expect(await page.evaluate((u) => window.wg.loadError(u), `${origin}/models/wg-tolstoy-q8_0.gguf`)).toBe('loaded');
    expect((await page.evaluate(([p]) => window.wg.chat(p, 8), [PROMPT] as const)).length).toBeGreaterThan(5);
  });

  it('survives a lost GPU device with requests in flight: they complete with the output they have without a loss, the model read from Cache Storage', async () => {
    const prompts = [PROMPT, 'Natasha said to her mother', 'Pierre'];
    const expected = await Promise.all(prompts.map((p) => node.chat.completions.create({ messages: [{ role: 'user', content: p }], temperature: 0, max_tokens: 24 })));
    const fetched: string[] = [];
    const onRequest = (r: { url(): string }) => void (r.url().endsWith('.gguf') && fetched.push(r.url()));
    context.on('request', onRequest);
    try {
      const runs = await page.evaluate(([ps]) => window.wg.streamWithDeviceLoss(ps, 24, 4), [prompts] as const);
      expect(runs).toEqual(expected.map((e) => ({ text: e.choices[0].message.content, finishReason: e.choices[0].finish_reason })));
    } finally {
      context.off('request', onRequest);
    }
    expect(fetched).toEqual([]);
    expect(await page.evaluate(async () => (await window.wg.engine!.metrics()).deviceRecoveries)).toBe(1);
    expect(await page.evaluate(async () => (await window.wg.engine!.metrics()).pagesUsed)).toBe(0);
  });

  it('errors cross the boundary as ApiErrors with status and param; the engine goes on', async () => {
    expect(await page.evaluate(() => window.wg.error({ messages: [] }))).toMatchObject({ status: 400, param: 'messages' });
    expect(await page.evaluate(() => window.wg.error({ messages: [{ role: 'user', content: 'x' }], temperature: 'hot' })))
      .toMatchObject({ status: 400, param: 'temperature', message: expect.stringMatching(/temperature must be a number/) });
    expect(await page.evaluate(() => window.wg.stats())).toMatch(/^prefill: [\d.]+ tokens\/sec/);
    expect(pageErrors).toEqual([]);
  });
});
