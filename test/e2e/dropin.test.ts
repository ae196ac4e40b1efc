// `npm run build`: the drop-in script dist/wgserve.js, with which a plain HTML page with no build
// step, served by a plain static server, chats with the model through one <script> tag; and the
// ES module build with types that bundlers get through package.json "exports".
import { Ajv } from 'ajv';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Engine } from '../../src/index.js';
import { launchBrowser } from '../helpers/browser.js';
import { shippedEngine } from '../helpers/engine.js';
import { REPO } from '../helpers/shared.js';
import { serveStatic } from '../helpers/static-server.js';

const PERSON = {
  type: 'object',
  properties: { name: { type: 'string', minLength: 1, maxLength: 12 }, age: { type: 'integer', minimum: 0, maximum: 120 } },
  required: ['name', 'age'],
  additionalProperties: false,
};

/**
 * In the page, on window.wgserve.engine: `count` grammars XGrammar rejects (each aborts the
 * instance that checked it), then a JSON-schema request. Gives each rejection's param and
 * whether its message is XGrammar's, and the structured answer.
 */
async function rejectThenStructured(page: Page, count: number): Promise<{ rejections: string[]; finishReason: string; content: string }> {
  return page.evaluate(async ({ count, schema }) => {
    const engine = window.wgserve.engine!;
    const rejections: string[] = [];
    for (let i = 0; i < count; i++) {
      const request = { messages: [{ role: 'user' as const, content: 'x' }], max_tokens: 4, response_format: { type: 'grammar' as const, grammar: `root ::= "${i}" |` } };
      const error = await engine.chat.completions.create(request as never).then(() => null, (e: unknown) => e as { param?: string; message?: string });
      rejections.push(`${error?.param} ${/EBNF parser error/.test(error?.message ?? '')}`);
    }
    const r = await engine.chat.completions.create({
      messages: [{ role: 'user', content: 'Who?' }], temperature: 0.7, seed: 2, max_tokens: 80,
      response_format: { type: 'json_schema', json_schema: { name: 'person', schema } },
    } as never) as { choices: { finish_reason: string; message: { content: string } }[] };
    return { rejections, finishReason: r.choices[0].finish_reason, content: r.choices[0].message.content };
  }, { count, schema: PERSON });
}

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

  it('ships XGrammar\'s script once, as dist/xgrammar.js beside it, not inside', () => {
    const script = readFileSync(join(REPO, 'node_modules/@mlc-ai/web-xgrammar/lib/index.js'), 'utf8');
    expect(readFileSync(join(REPO, 'dist/xgrammar.js'), 'utf8') === script).toBe(true);
    // The script's first line, quoted as text (Vite's ?raw) or as code, is in xgrammar.js only.
    const opening = '(function (global, factory) {';
    expect(script.includes(opening)).toBe(true);
    expect(readFileSync(join(REPO, 'dist/wgserve.js'), 'utf8').includes(opening)).toBe(false);
    for (const beside of ['dist/site/xgrammar.js', 'dist/esm/xgrammar.js']) expect(existsSync(join(REPO, beside)), beside).toBe(true);
  });

  it('fetches dist/xgrammar.js only after a rejected grammar; 150 rejections leave structured output working', async () => {
    const page = await browser.newPage();
    const fetched: string[] = [];
    page.on('request', (r) => void (r.url().endsWith('/xgrammar.js') && fetched.push(r.url())));
    await page.goto(`${site.url}/test/e2e/pages/dropin.html`);
    await page.waitForFunction(() => document.getElementById('status')!.textContent !== 'loading', null, { timeout: 120_000 });
    const before = await rejectThenStructured(page, 0);
    expect(new Ajv().validate(PERSON, JSON.parse(before.content))).toBe(true);
    expect(fetched).toEqual([]);
    const r = await rejectThenStructured(page, 150);
    expect(new Set(r.rejections)).toEqual(new Set(['response_format true']));
    expect(r.finishReason).toBe('stop');
    expect(new Ajv().validate(PERSON, JSON.parse(r.content))).toBe(true);
    expect(fetched).toEqual([`${site.url}/dist/xgrammar.js`]);
    await page.close();
  });

  it('without xgrammar.js (a 404), a console warning, and rejected grammars are checked as before on the one instance', async () => {
    const page = await browser.newPage();
    const warnings: string[] = [];
    page.on('console', (m) => void (m.type() === 'warning' && warnings.push(m.text())));
    await page.goto(`${site.url}/test/e2e/pages/worker.html`);
    await page.addScriptTag({ url: '/dist/wgserve.js' });
    await page.evaluate(async () => {
      window.wgserve.engine = await window.wgserve.createEngine({ model: '/models/wg-tolstoy-q8_0.gguf', xgrammarScript: '/dist/missing/xgrammar.js' });
    });
    const r = await rejectThenStructured(page, 3);
    expect(r.rejections).toEqual(['response_format true', 'response_format true', 'response_format true']);
    expect(new Ajv().validate(PERSON, JSON.parse(r.content))).toBe(true);
    expect(warnings.filter((w) => w.includes('XGrammar'))).toEqual([
      `wgserve: could not fetch XGrammar's script from ${site.url}/dist/missing/xgrammar.js (HTTP 404): grammars are checked on the instance that serves, which a few dozen rejected grammars leave unusable`,
    ]);
    await page.close();
  });
});
