// `npm run build`: the drop-in script dist/wgserve.js, with which a plain HTML page with no build
// step, served by a plain static server, chats with the model through one <script> tag; and the
// ES module build with types that bundlers get through package.json "exports".
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../../src/index.js';
import { launchBrowser } from '../helpers/browser.js';
import { shippedEngine } from '../helpers/engine.js';
import { REPO } from '../helpers/shared.js';
import { serveStatic } from '../helpers/static-server.js';

describe('drop-in script (dist/wgserve.js) in a plain page', () => {
  let browser: Browser;
  let site: Awaited<ReturnType<typeof serveStatic>>;
  let node: Engine;
  beforeAll(async () => {
    execFileSync('npm', ['run', 'build', '--silent'], { cwd: REPO, stdio: 'pipe' });
    site = await serveStatic(REPO);
    browser = await launchBrowser();
    node = await shippedEngine();
  });
  afterAll(async () => {
    await browser?.close();
    await site?.close();
    await node?.destroy();
  });

  it('one script tag with data-model gives window.wgserve and a ready engine that chats', async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${site.url}/test/e2e/pages/dropin.html`);
    await page.waitForFunction(() => document.getElementById('status')!.textContent !== 'loading', null, { timeout: 120_000 });
    expect(await page.textContent('#status')).toBe('ready');
    expect(await page.evaluate(() => typeof window.wgserve.createEngine)).toBe('function');
    await page.click('button');
    await page.waitForFunction(() => document.getElementById('status')!.textContent === 'done', null, { timeout: 120_000 });
    const expected = await node.chat.completions.create({ messages: [{ role: 'user', content: 'Prince Andrew looked at' }], temperature: 0, max_tokens: 24 });
    expect(await page.textContent('#reply')).toBe(expected.choices[0].message.content);
    expect(await page.evaluate(() => window.wgserve.engine?.modelId)).toBe('wg-tolstoy-q8_0');
    expect(errors).toEqual([]);
  });

  it('the ES module build imports as `wgserve` and `wgserve/browser`, and its types check', () => {
    const script = "import { createEngine, CreateMLCEngine } from 'wgserve'; import { createWorkerEngine } from 'wgserve/browser';" +
      "import { installPromptApi, LanguageModel } from 'wgserve/prompt-api';" +
      'console.log(typeof createEngine, typeof CreateMLCEngine, typeof createWorkerEngine, typeof installPromptApi, typeof LanguageModel.create)';
    expect(execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: REPO, encoding: 'utf8' }).trim()).toBe('function function function function function');
    const consumer = join(REPO, 'dist/consumer-check.ts');
    writeFileSync(consumer, [
      "import { createEngine, type ChatCompletion } from 'wgserve';",
      "import { createWorkerEngine } from 'wgserve/browser';",
      "export const f = async (): Promise<ChatCompletion> => (await createEngine({ model: 'm.gguf' })).chat.completions.create({ messages: [] });",
      'export const g = createWorkerEngine;',
      "import { installPromptApi, type LanguageModelSession } from 'wgserve/prompt-api';",
      "export const h = async (): Promise<string> => { const LM = await installPromptApi(); const s: LanguageModelSession = await LM.create({ samplingMode: 'most-predictable' }); return s.prompt('Hi'); };",
    ].join('\n'));
    const tsc = join(REPO, 'node_modules/.bin/tsc');
    const args = ['--ignoreConfig', '--noEmit', '--strict', '--lib', 'es2022,dom,dom.iterable', '--module', 'esnext', '--moduleResolution', 'bundler', '--target', 'es2022', '--skipLibCheck', '--types', '@webgpu/types,node', consumer];
    expect(() => execFileSync(tsc, args, { cwd: REPO, encoding: 'utf8' })).not.toThrow();
  });

  it('without data-model, ready rejects with a message saying what to do; a bad model URL rejects with its error', async () => {
    const page = await browser.newPage();
    await page.goto(`${site.url}/test/e2e/pages/worker.html`);
    await page.addScriptTag({ url: '/dist/wgserve.js' });
    expect(await page.evaluate(() => window.wgserve.ready.then(() => 'ok', (e: Error) => e.message))).toMatch(/no data-model.*createEngine/);
    const message = await page.evaluate(() => window.wgserve.createEngine({ model: '/models/nope.gguf' }).then(() => 'ok', (e: Error) => e.message));
    expect(message).toMatch(/nope\.gguf: HTTP 404/);
  });
});
