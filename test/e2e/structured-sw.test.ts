// Structured output through the Service Worker's OpenAI API (headless Chromium): a Service Worker
// may not call import(), so it hands XGrammar to the engine from a static import; a JSON-schema
// answer of the prose model comes back valid, and the official `openai` client's helpers (bundled
// into the page, talking to the Service Worker's /v1) get parsed objects and tool calls.
import { Ajv } from 'ajv';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openBrowserSession, type BrowserSession } from '../helpers/browser.js';
import { Person, Weather } from './pages/structured-schemas.js';

const PERSON = {
  type: 'object',
  properties: { name: { type: 'string', minLength: 1, maxLength: 12 }, age: { type: 'integer', minimum: 0, maximum: 120 } },
  required: ['name', 'age'],
  additionalProperties: false,
};

describe('structured output through the Service Worker (headless Chromium)', () => {
  let session: BrowserSession;
  let tab: Page;
  beforeAll(async () => {
    session = await openBrowserSession();
    tab = await session.context.newPage();
    await tab.goto(`${session.origin}/test/e2e/pages/sw.html`);
    await tab.evaluate(() => window.sw.register());
  });
  afterAll(() => session?.close());

  /** A person under a JSON schema, through fetch. */
  async function expectPerson(seed: number): Promise<void> {
    const body = {
      messages: [{ role: 'user', content: 'Who?' }], temperature: 0.7, seed, max_tokens: 80,
      response_format: { type: 'json_schema', json_schema: { name: 'person', schema: PERSON } },
    };
    const r = await tab.evaluate(async (b) => {
      const response = await fetch('/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(b) });
      return { status: response.status, json: (await response.json()) as { choices: { finish_reason: string; message: { content: string } }[] } };
    }, body);
    expect(r.status, JSON.stringify(r.json)).toBe(200);
    expect(r.json.choices[0].finish_reason).toBe('stop');
    expect(new Ajv().validate(PERSON, JSON.parse(r.json.choices[0].message.content))).toBe(true);
  }

  it('a json_schema response validates', async () => {
    await expectPerson(3);
  });

  it('many rejected grammars (each aborts the XGrammar instance that checked it, which is replaced) leave structured output working', async () => {
    const answers = await tab.evaluate(async (count) => {
      const out: string[] = [];
      for (let i = 0; i < count; i++) {
        const body = { messages: [{ role: 'user', content: 'x' }], max_tokens: 4, response_format: { type: 'grammar', grammar: `root ::= "${i}" |` } };
        const response = await fetch('/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
        const json = (await response.json()) as { error?: { param?: string; message?: string } };
        out.push(`${response.status} ${json.error?.param} ${/EBNF parser error/.test(json.error?.message ?? '')}`);
      }
      return out;
    }, 150);
    expect(new Set(answers)).toEqual(new Set(['400 response_format true']));
    await expectPerson(5);
  });

  it('the openai client\'s helpers in the page: parse with zod, zodFunction tools, a rejected schema, runTools', async () => {
    const r = await tab.evaluate(() => window.sw.openaiHelpers());
    for (const p of r.parse) {
      expect(p.finishReason).toBe('stop');
      expect(Person.parse(p.parsed)).toEqual(p.parsed);
    }
    expect(r.badSchema).toEqual({ isBadRequest: true, param: 'response_format' });
    expect(r.toolCall.finishReason).toBe('tool_calls');
    expect(r.toolCall.name).toBe('get_weather');
    expect(Weather.parse(r.toolCall.parsedArguments)).toEqual(r.toolCall.parsedArguments);
    expect(r.runTools.seen).toHaveLength(1);
    expect(Weather.parse(r.runTools.seen[0])).toEqual(r.runTools.seen[0]);
    expect(r.runTools.toolMessages).toBe(1);
  });
});
