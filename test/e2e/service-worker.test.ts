// The Service Worker serving the OpenAI API on the page's origin, in headless Chromium (WebGPU on
// SwiftShader): two tabs streaming at once through the one engine (greedy text equal to the
// CLI's), the official openai client in a page, a restart of the stopped worker from the cached
// model, and a request from another origin refused.
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openBrowserSession, type BrowserSession } from '../helpers/browser.js';
import { generateCli } from '../helpers/cli.js';
import { parsePrometheus, promValue } from '../helpers/prometheus.js';

const PROMPTS = ['Prince Andrew looked at', 'The old count'];
const TOKENS = 24;

describe('Service Worker: the OpenAI API for every tab of the origin (headless Chromium)', () => {
  let session: BrowserSession;
  let context: BrowserContext;
  let origin = '';
  const tabs: Page[] = [];
  const expected: string[] = [];
  const modelFetches: string[] = [];

  const openTab = async () => {
    const tab = await context.newPage();
    tab.on('pageerror', (e) => console.error(`page error: ${e.message}`));
    await tab.goto(`${origin}/test/e2e/pages/sw.html`);
    await tab.evaluate(() => window.sw.register());
    tabs.push(tab);
    return tab;
  };

  beforeAll(async () => {
    session = await openBrowserSession();
    ({ context, origin } = session);
    context.on('request', (r) => void (r.url().endsWith('.gguf') && modelFetches.push(r.url())));
    for (const p of PROMPTS) expected.push((await generateCli(p, TOKENS, true)).text);
  });
  afterAll(() => session?.close());

  it('answers GET /v1/models and a chat completion with the CLI greedy text', async () => {
    const tab = await openTab();
    expect(await tab.evaluate(() => window.sw.models())).toMatchObject({ object: 'list', data: [{ id: 'wg-tolstoy-q8_0' }] });
    const r = await tab.evaluate(([p, n]) => window.sw.chat(p, n), [PROMPTS[0], TOKENS] as const);
    expect(r.status).toBe(200);
    expect(r.body.choices![0].message.content).toBe(expected[0]);
  });

  it('two tabs stream at the same time through the one engine, each with its greedy text', async () => {
    const second = await openTab();
    const [a, b] = await Promise.all([
      tabs[0].evaluate(([p, n]) => window.sw.stream(p, n), [PROMPTS[0], TOKENS * 2] as const),
      second.evaluate(([p, n]) => window.sw.stream(p, n), [PROMPTS[1], TOKENS] as const),
    ]);
    expect(a.text.startsWith(expected[0])).toBe(true);
    expect(b.text).toBe(expected[1]);
    expect([a.finishReason, b.finishReason]).toEqual(['length', 'length']);
    // Batched together: each tab got tokens while the other was still streaming.
    expect(b.firstAt).toBeLessThan(a.lastAt);
    expect(a.firstAt).toBeLessThan(b.lastAt);
  });

  it('takes metadata.workflow_id and serves GET /metrics (Prometheus text) and DELETE /v1/workflows/{id}', async () => {
    const tab = tabs[0] ?? await openTab();
    const r = await tab.evaluate(async () => {
      const post = (body: object) => fetch('/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const ok = await post({ messages: [{ role: 'user', content: 'Natasha' }], max_tokens: 2, metadata: { workflow_id: 'tab-job', agent_id: 'a1' }, priority: 2 });
      const bad = await post({ messages: [{ role: 'user', content: 'Natasha' }], max_tokens: 2, priority: 'high' });
      const metrics = await fetch('/metrics');
      const ended = await fetch('/v1/workflows/tab-job', { method: 'DELETE' });
      return { ok: ok.status, bad: (await bad.json()).error.param, type: metrics.headers.get('content-type'), text: await metrics.text(), ended: ended.status };
    });
    expect(r.ok).toBe(200);
    expect(r.bad).toBe('priority');
    expect(r.type).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(promValue(parsePrometheus(r.text), 'wgserve_agent_calls_total', { workflow: 'tab-job', agent: 'a1' })).toBe(1);
    expect(r.ended).toBe(200);
  });

  it('the official openai client, bundled into a page, works against it streaming and not', async () => {
    const r = await tabs[1].evaluate(([p, n]) => window.sw.openai(p, n), [PROMPTS[1], TOKENS] as const);
    expect(r.text).toBe(expected[1]);
    expect(r.streamed).toBe(expected[1]);
    expect(r.models).toEqual(['wg-tolstoy-q8_0']);
  });

  it('a lost GPU device in the Service Worker is recovered from: the streams in flight in two tabs complete unchanged', async () => {
    const before = await tabs[0].evaluate(([p]) => window.sw.chat(p, 1), [PROMPTS[0]] as const);
    const fetchesBefore = modelFetches.length;
    const [a, b] = await Promise.all([
      tabs[0].evaluate(([p, n]) => window.sw.stream(p, n, 3), [PROMPTS[0], TOKENS] as const),
      tabs[1].evaluate(([p, n]) => window.sw.stream(p, n), [PROMPTS[1], TOKENS] as const),
    ]);
    expect(a.deviceLost).toBe(true);
    expect([a.text, b.text]).toEqual(expected);
    expect([a.finishReason, b.finishReason]).toEqual(['length', 'length']);
    // The same engine recovered (the worker did not restart), and no model was downloaded.
    const after = await tabs[0].evaluate(([p, n]) => window.sw.chat(p, n), [PROMPTS[0], TOKENS] as const);
    expect(after.started).toBe(before.started);
    expect(after.body.choices![0].message.content).toBe(expected[0]);
    expect(modelFetches.length).toBe(fetchesBefore);
  });

  it('a stopped Service Worker comes back on the next request, with the model from the browser cache', async () => {
    const fetchesBefore = modelFetches.length;
    const before = await tabs[0].evaluate(([p, n]) => window.sw.chat(p, n), [PROMPTS[0], 1] as const);
    const cdp = await context.newCDPSession(tabs[0]);
    await cdp.send('ServiceWorker.enable');
    await cdp.send('ServiceWorker.stopAllWorkers');
    const r = await tabs[0].evaluate(([p, n]) => window.sw.chat(p, n), [PROMPTS[0], TOKENS] as const);
    expect(r.body.choices![0].message.content).toBe(expected[0]);
    // A new engine (the worker really stopped), loaded without fetching the model again.
    expect(Number(r.started)).toBeGreaterThan(Number(before.started));
    expect(modelFetches.length).toBe(fetchesBefore);
  });

  it('refuses a request from another origin', async () => {
    // localhost and 127.0.0.1 are different origins on the same server: a page of the first
    // submits a form into the second's /v1/, which the Service Worker answers.
    const foreign = await context.newPage();
    await foreign.goto(`${origin.replace('127.0.0.1', 'localhost')}/test/e2e/pages/worker.html`);
    await Promise.all([
      foreign.waitForNavigation(),
      foreign.evaluate((target) => {
        const form = Object.assign(document.createElement('form'), { method: 'POST', action: target });
        document.body.append(form);
        form.submit();
      }, `${origin}/v1/chat/completions`),
    ]);
    const body = await foreign.textContent('body');
    expect(JSON.parse(body!)).toMatchObject({ error: { code: 'forbidden_origin', message: expect.stringMatching(/not served/) } });
    await foreign.close();
  });
});
