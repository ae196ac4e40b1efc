// The page path: the shipped model loads in headless Chromium and generates on WebGPU
// (SwiftShader), streaming the same greedy text as the engine in Node.
import type { Browser } from 'playwright-core';
import type { ViteDevServer } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StreamingDecoder } from '../../src/model/index.js';
import { launchBrowser, startDevServer } from '../helpers/browser.js';
import { greedy, loadShared } from '../helpers/model.js';

describe('page in headless Chromium', () => {
  let browser: Browser;
  let server: ViteDevServer;
  let url = '';
  beforeAll(async () => {
    ({ server, url } = await startDevServer());
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('loads the shipped model and streams the same greedy text as Node', async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(url);
    await page.waitForFunction(() => !(document.getElementById('go') as HTMLButtonElement).disabled, null, { timeout: 120_000 });
    await page.fill('#prompt', 'Prince Andrew looked at');
    await page.click('#go');
    await page.waitForFunction(() => /tokens in/.test(document.getElementById('status')!.textContent ?? ''), null, { timeout: 120_000 });
    const text = await page.textContent('#out');
    expect(errors).toEqual([]);

    const m = await loadShared('wg-tolstoy-q8_0.gguf', 64);
    const [ids] = await greedy(m, [m.model.tokenizer.encode('Prince Andrew looked at')], 64);
    const decoder = new StreamingDecoder(m.model.tokenizer);
    const expected = ids.map((id) => decoder.push(id)).join('') + decoder.flush();
    m.close();
    expect(text).toBe(expected);
    expect(text!.length).toBeGreaterThan(20);
  });
});
