// Structured output with the engine in a Web Worker (headless Chromium, WebGPU on SwiftShader):
// XGrammar loads in the worker (its wasm inlined, nothing fetched), and a JSON-schema answer and a
// forced tool call of the prose model come back well formed.
import { Ajv } from 'ajv';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ChatCompletion } from '../../src/index.js';
import { openBrowserSession, type BrowserSession } from '../helpers/browser.js';

const PERSON = {
  type: 'object',
  properties: { name: { type: 'string', minLength: 1, maxLength: 12 }, age: { type: 'integer', minimum: 0, maximum: 120 } },
  required: ['name', 'age'],
  additionalProperties: false,
};

describe('structured output in a Web Worker (headless Chromium)', () => {
  let session: BrowserSession;
  let page: Page;
  const pageErrors: string[] = [];
  beforeAll(async () => {
    session = await openBrowserSession();
    page = await session.context.newPage();
    page.on('pageerror', (e) => pageErrors.push(e.message));
    await page.goto(`${session.origin}/test/e2e/pages/worker.html`);
    expect(await page.evaluate(() => window.wg.load())).toBe('wg-tolstoy-q8_0');
  });
  afterAll(async () => {
    await page?.evaluate(() => window.wg.engine?.terminate());
    await session?.close();
  });

  const create = (request: object) => page.evaluate((r) => window.wg.engine!.chat.completions.create(r as never), request) as Promise<ChatCompletion>;

  it('a json_schema response validates', async () => {
    const r = await create({
      messages: [{ role: 'user', content: 'Who?' }], temperature: 0.7, seed: 1, max_tokens: 80,
      response_format: { type: 'json_schema', json_schema: { name: 'person', schema: PERSON } },
    });
    expect(r.choices[0].finish_reason).toBe('stop');
    expect(new Ajv().validate(PERSON, JSON.parse(r.choices[0].message.content ?? ''))).toBe(true);
    expect(pageErrors).toEqual([]);
  });

  it('many rejected grammars (each aborts the XGrammar instance that checked it, made anew from the script\'s text) leave it working', async () => {
    const messages = await page.evaluate(async (count) => {
      const out: string[] = [];
      for (let i = 0; i < count; i++) {
        const request = { messages: [{ role: 'user' as const, content: 'x' }], max_tokens: 4, response_format: { type: 'grammar' as const, grammar: `root ::= "${i}" |` } };
        const error = await window.wg.engine!.chat.completions.create(request as never).then(() => null, (e: unknown) => e as { param?: string; message?: string });
        out.push(`${error?.param} ${/EBNF parser error/.test(error?.message ?? '')}`);
      }
      return out;
    }, 150);
    expect(new Set(messages)).toEqual(new Set(['response_format true']));
    const r = await create({
      messages: [{ role: 'user', content: 'Who?' }], temperature: 0.7, seed: 2, max_tokens: 80,
      response_format: { type: 'json_schema', json_schema: { name: 'person', schema: PERSON } },
    });
    expect(r.choices[0].finish_reason).toBe('stop');
    expect(new Ajv().validate(PERSON, JSON.parse(r.choices[0].message.content ?? ''))).toBe(true);
  });

  it('a forced tool call comes back as message.tool_calls', async () => {
    const r = await create({
      messages: [{ role: 'user', content: 'Weather?' }], temperature: 0, max_tokens: 200,
      tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 12 } }, required: ['city'] } } }],
      tool_choice: { type: 'function', function: { name: 'get_weather' } },
    });
    expect(r.choices[0].finish_reason).toBe('tool_calls');
    expect(r.choices[0].message.tool_calls![0].function.name).toBe('get_weather');
    expect(typeof (JSON.parse(r.choices[0].message.tool_calls![0].function.arguments) as { city: unknown }).city).toBe('string');
  });
});
