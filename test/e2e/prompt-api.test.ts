// The Prompt API polyfill in headless Chromium: installed on a page, a session on an engine in a
// Web Worker prompts and streams the same greedy text as a session on an engine in Node; clones
// stream side by side; the drop-in script's data-prompt-api gives a page LanguageModel.
import { execFileSync } from 'node:child_process';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../../src/index.js';
import type {} from '../../src/browser/dropin.js';
import { createLanguageModel, type LanguageModelClass } from '../../src/prompt-api/index.js';
import { openBrowserSession, type BrowserSession } from '../helpers/browser.js';
import { shippedEngine } from '../helpers/engine.js';
import { REPO } from '../helpers/shared.js';

describe('Prompt API polyfill in headless Chromium', () => {
  let session: BrowserSession;
  let page: Page;
  let node: Engine;
  let NodeLanguageModel: LanguageModelClass;
  const pageErrors: string[] = [];
  beforeAll(async () => {
    execFileSync(process.execPath, [`${REPO}/node_modules/vite/bin/vite.js`, 'build', '-c', 'vite.lib.config.ts', '--logLevel', 'error'], { cwd: REPO, stdio: 'pipe' });
    session = await openBrowserSession();
    page = await session.context.newPage();
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await page.goto(`${session.origin}/test/e2e/pages/prompt-api.html`);
    await page.waitForFunction(() => document.getElementById('status')!.textContent === 'ready');
    node = await shippedEngine();
    NodeLanguageModel = createLanguageModel({ engine: node, maxResponseTokens: 16 });
  });
  afterAll(async () => {
    await session?.close();
    await node?.destroy();
  });

  it('installs globalThis.LanguageModel; availability is downloadable, then create() loads the model with progress 0 .. 1', async () => {
    expect(await page.evaluate(() => window.pa.installedIsGlobal)).toBe(true);
    const r = await page.evaluate(async () => {
      const LM = (window as any).LanguageModel;
      const before = await LM.availability();
      const loaded: number[] = [];
      const s = await LM.create({ samplingMode: 'most-predictable', monitor: (m: EventTarget) => m.addEventListener('downloadprogress', (e: any) => loaded.push(e.loaded)) });
      (window as any).session = s;
      return { before, after: await LM.availability(), loaded, window: s.contextWindow, isProgress: true };
    });
    expect(r.before).toBe('downloadable');
    expect(r.after).toBe('available');
    expect(r.window).toBe(256);
    expect(r.loaded[0]).toBe(0);
    expect(r.loaded.at(-1)).toBe(1);
    expect(r.loaded.length).toBeGreaterThan(2);
    for (let i = 1; i < r.loaded.length; i++) expect(r.loaded[i]).toBeGreaterThan(r.loaded[i - 1]);
  });

  it('a session prompts and streams the greedy text of a session in Node', async () => {
    const inPage = await page.evaluate(async () => {
      const s = (window as any).session;
      const text: string = await s.prompt('Prince Andrew looked at');
      const chunks: string[] = [];
      const stream: ReadableStream<string> = s.promptStreaming('Natasha');
      for await (const c of stream as any) chunks.push(c);
      return { text, chunks, usage: s.contextUsage };
    });
    const n = await NodeLanguageModel.create({ samplingMode: 'most-predictable' });
    expect(inPage.text).toBe(await n.prompt('Prince Andrew looked at'));
    expect(inPage.text.length).toBeGreaterThan(0);
    expect(inPage.chunks.length).toBeGreaterThan(1);
    expect(inPage.chunks.join('')).toBe(await n.prompt('Natasha'));
    expect(inPage.usage).toBe(n.contextUsage);
    n.destroy();
  });

  it('clones of one session stream side by side, each the same greedy text', async () => {
    const r = await page.evaluate(async () => {
      const LM = (window as any).LanguageModel;
      const base = await LM.create({ samplingMode: 'most-predictable', initialPrompts: [{ role: 'system', content: 'War and Peace.' }] });
      const clones = await Promise.all([base.clone(), base.clone(), base.clone()]);
      const read = async (s: any) => {
        let t = '';
        for await (const c of s.promptStreaming('Pierre said') as any) t += c;
        return t;
      };
      const texts = await Promise.all(clones.map(read));
      const aborted = new AbortController();
      const failing = clones[0].prompt('x', { signal: aborted.signal });
      aborted.abort();
      const abortName = await failing.then(() => 'resolved', (e: Error) => e.name);
      base.destroy();
      const destroyedName = await base.prompt('x').then(() => 'resolved', (e: Error) => e.name);
      return { texts, abortName, destroyedName };
    });
    expect(new Set(r.texts).size).toBe(1);
    expect(r.texts[0].length).toBeGreaterThan(0);
    expect(r.abortName).toBe('AbortError');
    expect(r.destroyedName).toBe('AbortError');
    expect(pageErrors).toEqual([]);
  });

  it('on a WorkerEngine, sessions are engine sessions in the worker: clones take no pages and no prefill, destroy releases them', async () => {
    const r = await page.evaluate(async () => {
      // Built at run time: vitest would rewrite an import() written here for Node.
      const load = new Function('url', 'return import(url)') as (url: string) => Promise<any>;
      const { createWorkerEngine } = await load('/src/browser/worker-engine.ts');
      const { createLanguageModel } = await load('/src/prompt-api/index.ts');
      const worker = new Worker('/workers/engine.worker.ts', { type: 'module' });
      const engine = await createWorkerEngine({ worker, model: '/models/wg-tolstoy-q8_0.gguf' });
      const LM = createLanguageModel({ engine, maxResponseTokens: 4 });
      const base = await LM.create({ samplingMode: 'most-predictable', initialPrompts: [{ role: 'system', content: 'War and Peace. '.repeat(6) }] });
      const created = await engine.metrics();
      const clones = await Promise.all([base.clone(), base.clone()]);
      const cloned = await engine.metrics();
      await Promise.all(clones.map((c: any) => c.prompt('Pierre')));
      const prompted = await engine.metrics();
      for (const s of [base, ...clones]) s.destroy();
      await new Promise((resolve) => setTimeout(resolve, 100));
      const destroyed = await engine.metrics();
      await engine.terminate();
      return { usage: base.contextUsage, created, cloned, prompted, destroyed };
    });
    expect(r.created.sessions.open).toBe(1);
    expect(r.cloned.sessions.open).toBe(3);
    expect(r.cloned.pagesUsed).toBe(r.created.pagesUsed);
    expect(r.cloned.steps).toBe(r.created.steps);
    // Each clone's prompt took the whole context from its session.
    expect(r.prompted.cachedPromptTokens - r.cloned.cachedPromptTokens).toBeGreaterThanOrEqual(2 * r.usage);
    expect(r.destroyed.sessions).toMatchObject({ open: 0, pinnedPages: 0 });
    expect(r.destroyed.pagesUsed).toBe(0);
  });

  it('the demo page panel: one session cloned, the clones streaming side by side with no prefill of the shared context', async () => {
    const demo = await session.context.newPage();
    const errors: string[] = [];
    demo.on('pageerror', (e) => errors.push(e.message));
    await demo.goto(`${session.origin}/`);
    await demo.waitForFunction(() => !(document.getElementById('pa-start') as HTMLButtonElement).disabled, null, { timeout: 120_000 });
    const context = 'Prince Andrew and Pierre talked late into the night about the war, about Natasha, and about the old prince at Bald Hills.';
    const openings = ['Natasha', 'The old count', 'Pierre said', 'At the ball'];
    await demo.fill('#max-tokens', '12');
    await demo.fill('#pa-context', context);
    await demo.fill('#pa-prompts', openings.join(' | '));
    await demo.fill('#pa-clones', '4');
    await demo.selectOption('#pa-sampling', 'most-predictable');
    await demo.click('#pa-start');
    await demo.waitForFunction(() => (window as any).demo.promptPanel.state.cost !== null, null, { timeout: 120_000 });
    const state = await demo.evaluate(() => (window as any).demo.promptPanel.state);
    expect(await demo.locator('#pa-sessions .agent').count()).toBe(4);
    // Side by side: all four were streaming at once, each in several chunks.
    expect(state.cost.streamingAtOnce).toBe(4);
    for (const n of state.chunks) expect(n).toBeGreaterThan(1);
    // Cloning cost nothing; every clone's prompt took the whole shared context from its session.
    expect(state.cost).toMatchObject({ cloneSteps: 0, clonePages: 0 });
    expect(state.cost.contextTokens).toBeGreaterThan(20);
    expect(state.cost.cachedPromptTokens).toBeGreaterThanOrEqual(4 * state.cost.contextTokens);
    expect(await demo.textContent('#pa-status')).toMatch(/^4 clones of one \d+-token context, 4 streaming at once: cloning computed nothing and took no page; their prompts took \d+ of \d+ tokens/);
    // The same greedy text as clones of the same session on the engine in Node.
    const NodeLM = createLanguageModel({ engine: node, maxResponseTokens: 12 });
    const base = await NodeLM.create({ samplingMode: 'most-predictable', initialPrompts: [{ role: 'user', content: context }] });
    const expected = await Promise.all(openings.map(async (o) => (await base.clone()).prompt(o)));
    base.destroy();
    expect(state.texts).toEqual(expected);
    await demo.screenshot({ path: `${REPO}/test-results/prompt-api-demo.png`, fullPage: true });
    expect(errors).toEqual([]);
    await demo.close();
  });

  it('the drop-in script with data-prompt-api gives a plain page LanguageModel', async () => {
    const dropin = await session.context.newPage();
    const errors: string[] = [];
    dropin.on('pageerror', (e) => errors.push(e.message));
    await dropin.goto(`${session.origin}/test/e2e/pages/dropin-prompt-api.html`);
    const text = await dropin.evaluate(async () => {
      const LM = await window.wgserve.promptApi!;
      if (LM !== (window as any).LanguageModel) throw new Error('wgserve.promptApi is not window.LanguageModel');
      const s = await LM.create({ samplingMode: 'most-predictable' });
      const chunks: string[] = [];
      for await (const c of s.promptStreaming('Prince Andrew looked at') as any) {
        chunks.push(c);
        if (chunks.length === 8) break;
      }
      return chunks.join('');
    });
    expect(text.length).toBeGreaterThan(0);
    const n = await NodeLanguageModel.create({ samplingMode: 'most-predictable' });
    expect((await n.prompt('Prince Andrew looked at')).startsWith(text)).toBe(true);
    n.destroy();
    expect(errors).toEqual([]);
    await dropin.close();
  });
});
