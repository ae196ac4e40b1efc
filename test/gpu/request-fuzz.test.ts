// Seeded malformed and oversized requests through the HTTP handler to the real engine: every one
// is answered 200 or a 4xx with a short OpenAI-shaped error, never a 500; a good request alongside
// completes unchanged and nothing is left running.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOpenAiHandler } from '../../src/engine/http.js';
import type { Engine } from '../../src/index.js';
import { shippedEngine } from '../helpers/engine.js';
import { rng } from '../helpers/random.js';

// Deeper than JSON.stringify can write: placeholders, replaced in the body's text.
const RAW: Record<string, string> = {
  '@deep-array': '['.repeat(50_000) + ']'.repeat(50_000),
  '@deep-object': '{"a":'.repeat(50_000) + '1' + '}'.repeat(50_000),
};
const toJson = (body: unknown) => JSON.stringify(body).replace(/"(@deep-array|@deep-object)"/g, (_, key: string) => RAW[key]);

const VALUES: unknown[] = [
  null, true, false, -1, 0, 1, 2, 2.5, 17, 1e308, -1e308, 2 ** 53 + 2, '', 'x', 'y'.repeat(100_000), '<|eot_id|>',
  [], [1], [1, 2, 3], ['a', 'b'], Array.from({ length: 100 }, () => 'a'), Array.from({ length: 5000 }, (_, i) => i),
  {}, { type: 'text' }, { type: 'json_object' }, { include_usage: 'yes' }, { '5': 100 }, { abc: 1 },
  [{ role: 'user', content: 'hi' }], [{ role: 'user' }], [{ role: 'user', content: [{ type: 'text', text: 'x' }] }],
  '@deep-array', '@deep-object', [{ role: 'user', content: '@deep-array' }], { type: '@deep-object' },
];

const FIELDS = [
  'messages', 'prompt', 'n', 'temperature', 'top_p', 'top_k', 'min_p', 'stop', 'logit_bias', 'logprobs', 'top_logprobs',
  'max_tokens', 'max_completion_tokens', 'seed', 'stream', 'stream_options', 'response_format', 'tools', 'tool_choice',
  'echo', 'suffix', 'best_of', 'stop_token_ids', 'ignore_eos', 'frequency_penalty', 'presence_penalty',
  'repetition_penalty', 'model',
];

describe('seeded malformed requests over HTTP', () => {
  let engine: Engine;
  beforeAll(async () => {
    engine = await shippedEngine();
  });
  afterAll(() => engine.unload());

  it('answers each with 200 or a short 4xx, never a 500; a good request alongside completes', async () => {
    const handler = createOpenAiHandler(engine);
    const post = (path: string, body: unknown) => handler(new Request(`http://localhost${path}`, { method: 'POST', body: toJson(body) }));
    const goodBody = { messages: [{ role: 'user', content: 'Prince Andrew looked at' }], max_tokens: 16, temperature: 0 };
    const expected = await (await post('/v1/chat/completions', goodBody)).json();
    const good = post('/v1/chat/completions', goodBody);
    const r = rng(99);
    const statuses = new Map<number, number>();
    for (let i = 0; i < 150; i++) {
      const chat = r() < 0.5;
      const body: Record<string, unknown> = chat
        ? { messages: [{ role: 'user', content: 'Natasha' }], max_tokens: 2 }
        : { prompt: 'Natasha', max_tokens: 2 };
      const changes = 1 + Math.floor(r() * 3);
      for (let c = 0; c < changes; c++) body[FIELDS[Math.floor(r() * FIELDS.length)]] = VALUES[Math.floor(r() * VALUES.length)];
      // Keep valid generations short: a mutated max_tokens that is valid is capped.
      for (const key of ['max_tokens', 'max_completion_tokens']) {
        if (typeof body[key] === 'number' && Number.isInteger(body[key]) && (body[key] as number) > 2) body[key] = 2;
      }
      const response = await post(chat ? '/v1/chat/completions' : '/v1/completions', body);
      const text = await response.text();
      statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
      const what = `case ${i}: ${JSON.stringify(body).slice(0, 300)} -> ${response.status} ${text.slice(0, 300)}`;
      expect([200, 400, 404, 429], what).toContain(response.status);
      if (response.status !== 200) {
        const error = (JSON.parse(text) as { error: { message: string; type: string } }).error;
        expect(error.type, what).toMatch(/invalid_request_error|not_found_error|rate_limit_error/);
        expect(error.message.length, what).toBeLessThan(500);
      } else if (text.startsWith('data:')) {
        expect(text, what).not.toMatch(/"error"/);
      }
    }
    expect(await (await good).json()).toMatchObject({ choices: expected.choices });
    await engine.core!.idle();
    expect(engine.core!.kv.pool.usedPages).toBe(0);
    expect(statuses.get(400)).toBeGreaterThan(30);
    expect(statuses.get(200)).toBeGreaterThan(10);
  });
});
