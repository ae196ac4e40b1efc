// The demo page as a static site: `vite build` (part of `npm run build`) makes dist/site, served
// here by a plain static file server. It loads the shipped model (and a model picked as a file),
// runs several agents at once, each streaming text into its panel, and its live charts fill. It
// registers the Service Worker (sw.js), so another tab of the origin gets the OpenAI API at /v1.
import { Ajv } from 'ajv';
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser } from '../helpers/browser.js';
import { SHIPPED_MODEL, shippedEngine } from '../helpers/engine.js';
import { REPO } from '../helpers/shared.js';
import { serveStatic } from '../helpers/static-server.js';

const AGENTS = 4;

describe('demo page (built static site) in headless Chromium', () => {
  let browser: Browser;
  let site: Awaited<ReturnType<typeof serveStatic>>;
  let page: Page;
  const errors: string[] = [];
  beforeAll(async () => {
    execFileSync(join(REPO, 'node_modules/.bin/vite'), ['build', '--logLevel', 'error'], { cwd: REPO, stdio: 'pipe' });
    site = await serveStatic(join(REPO, 'dist/site'));
    browser = await launchBrowser();
    // One context for the demo tab and the other tab of the origin (they share the Service Worker).
    page = await (await browser.newContext({ viewport: { width: 1280, height: 1100 } })).newPage();
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${site.url}/index.html`);
  });
  afterAll(async () => {
    await browser?.close();
    await site?.close();
  });

  const waitReady = () => page.waitForFunction(() => /^(Ready|Could not)/.test(document.getElementById('status')!.textContent ?? ''), null, { timeout: 120_000 });

  it('loads the shipped model by default', async () => {
    await waitReady();
    expect(await page.textContent('#status')).toBe('Ready: wg-tolstoy-q8_0');
  });

  it('registers the Service Worker: another tab of the origin calls /v1/chat/completions and gets the greedy text', async () => {
    const script = await page.evaluate(async () => (await navigator.serviceWorker.ready).active?.scriptURL ?? '');
    expect(script).toMatch(/\/sw\.js\?model=.*assets%2Fwg-tolstoy-q8_0-[\w-]+\.gguf&id=wg-tolstoy-q8_0$/);
    const other = await page.context().newPage();
    try {
      await other.goto(`${site.url}/index.html`);
      await other.waitForFunction(() => !!navigator.serviceWorker.controller, null, { timeout: 30_000 });
      const body = { model: 'wg-tolstoy-q8_0', messages: [{ role: 'user', content: 'Prince Andrew looked at' }], temperature: 0, max_tokens: 16 };
      const r = await other.evaluate(async (b) => {
        const models = await (await fetch('/v1/models')).json() as { data: { id: string }[] };
        const response = await fetch('/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(b) });
        return { models: models.data.map((m) => m.id), status: response.status, json: await response.json() as { choices: { message: { content: string } }[] } };
      }, body);
      const node = await shippedEngine();
      try {
        const expected = await node.chat.completions.create({ ...body, model: undefined } as never) as { choices: { message: { content: string } }[] };
        expect(r).toEqual({ models: ['wg-tolstoy-q8_0'], status: 200, json: expect.objectContaining({ choices: [expect.objectContaining({ message: expect.objectContaining({ content: expected.choices[0].message.content }) })] }) });
      } finally {
        await node.destroy();
      }
    } finally {
      await other.close();
    }
  });

  it('the built Service Worker replaces aborted XGrammar instances from xgrammar.js beside it: 150 rejected grammars, then a schema answer', async () => {
    const other = await page.context().newPage();
    try {
      await other.goto(`${site.url}/index.html`);
      await other.waitForFunction(() => !!navigator.serviceWorker.controller, null, { timeout: 30_000 });
      const schema = { type: 'object', properties: { name: { type: 'string', minLength: 1, maxLength: 12 } }, required: ['name'], additionalProperties: false };
      const r = await other.evaluate(async ({ count, schema }) => {
        const post = (body: object) => fetch('/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
        const rejected = new Set<string>();
        for (let i = 0; i < count; i++) {
          const response = await post({ messages: [{ role: 'user', content: 'x' }], max_tokens: 4, response_format: { type: 'grammar', grammar: `root ::= "${i}" |` } });
          rejected.add(`${response.status} ${((await response.json()) as { error?: { param?: string } }).error?.param}`);
        }
        const response = await post({ messages: [{ role: 'user', content: 'Who?' }], temperature: 0.7, seed: 1, max_tokens: 40, response_format: { type: 'json_schema', json_schema: { name: 'n', schema } } });
        const json = (await response.json()) as { choices?: { finish_reason: string; message: { content: string } }[]; error?: unknown };
        return { rejected: [...rejected], finishReason: json.choices?.[0].finish_reason, content: json.choices?.[0].message.content ?? '', error: json.error };
      }, { count: 150, schema });
      expect(r.rejected).toEqual(['400 response_format']);
      expect(r.finishReason, JSON.stringify(r.error)).toBe('stop');
      expect(new Ajv().validate(schema, JSON.parse(r.content))).toBe(true);
    } finally {
      await other.close();
    }
  });

  it(`runs ${AGENTS} agents at once, each streaming into its panel; the charts and stats fill`, async () => {
    await page.fill('#agent-count', String(AGENTS));
    await page.fill('#max-tokens', '16');
    await page.click('#start');
    await page.waitForFunction((n) => window.demo.agentsFinished === n, AGENTS, { timeout: 120_000 });
    const texts = await page.$$eval('.agent .out', (outs) => outs.map((o) => o.textContent ?? ''));
    expect(texts).toHaveLength(AGENTS);
    for (const t of texts) expect(t).toMatch(/\w+.*— go on —\n.*\w+/s);
    expect(new Set(texts).size).toBe(AGENTS);
    // Two more ticks, so the charts hold the whole run.
    const points = await page.evaluate(() => window.demo.charts.batch.points);
    await page.waitForFunction((p) => window.demo.charts.batch.points >= p + 2, points, { timeout: 30_000 });
    const charts = await page.evaluate(() => Object.fromEntries(Object.entries(window.demo.charts).map(([k, c]) => [k, c.points])));
    for (const [name, n] of Object.entries(charts)) expect(n, name).toBeGreaterThan(2);
    // The canvases were drawn (uPlot renders every series), and the stats panel has numbers.
    expect(await page.$$eval('#charts canvas', (c) => c.length)).toBe(5);
    expect(await page.textContent('#stats')).toMatch(/^prefill: [\d.]+ tokens\/sec, decode: [\d.]+ tokens\/sec \(\d+ requests/);
    // The agents ran as workflows of two: a row per workflow (ended, with its completion time) and per agent.
    await page.waitForFunction(() => [...document.querySelectorAll('#workflows tr.workflow')].filter((r) => / s$/.test(r.lastElementChild!.textContent!)).length === 2, null, { timeout: 30_000 });
    const rows = await page.$$eval('#workflows tr.workflow, #workflows tr.agent-row', (trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent!.trim())));
    expect(rows.map((r) => `${r[0]}: ${r[1]} calls`).sort()).toEqual([
      'agent 1: 2 calls', 'agent 2: 2 calls', 'agent 3: 2 calls', 'agent 4: 2 calls', 'run 1 workflow 1: 4 calls', 'run 1 workflow 2: 4 calls',
    ]);
    mkdirSync(join(REPO, 'test-results'), { recursive: true });
    await page.screenshot({ path: join(REPO, 'test-results/demo.png'), fullPage: true });
  });

  it('loads a model picked as a file', async () => {
    await page.check('input[name=source][value=file]');
    await page.setInputFiles('#model-file', SHIPPED_MODEL);
    await page.click('#load');
    await page.waitForFunction(() => window.demo.loads === 2, null, { timeout: 60_000 });
    // A File's name is the model's id.
    expect(await page.textContent('#status')).toBe('Ready: wg-tolstoy-q8_0');
    expect(errors).toEqual([]);
  });
});
