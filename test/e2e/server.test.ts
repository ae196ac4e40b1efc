// `wgserve serve` end to end: the server spawned as a user would run it (`node bin/wgserve.mjs
// serve --port 0`, the shipped model, the inherited environment finding SwiftShader as in
// scripts/test.sh), driven by the official `openai` client. Greedy text must equal what
// `wgserve generate` prints for the same prompt; streams must equal their non-streaming answers,
// alone and four at once; a client that leaves frees its sequence; errors arrive as the client's
// typed errors; SIGTERM ends the server with exit code 0.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, generateCli, type GenerateJson } from '../helpers/cli.js';
import { parsePrometheus, promValue } from '../helpers/prometheus.js';
import { START_TIMEOUT_MS, startServer, type Server } from '../helpers/server.js';
import { REPO } from '../helpers/shared.js';

const MODEL_ID = 'wg-tolstoy-q8_0';
const CONTEXT_LENGTH = 256;
interface Health {
  status: string;
  active_sequences: number;
  kv_pages: { used: number; total: number };
  served: { sequences: number; generated_tokens: number };
}

const CHAT_PROMPT = 'Prince Andrew looked at';
const TEXT_PROMPT = 'The old count';
const MAX_TOKENS = 12;
/** A generation long enough (many seconds on SwiftShader) that only an abort ends it early. */
const LONG_TOKENS = CONTEXT_LENGTH - 32;

function chatRequest(prompt: string, maxTokens = MAX_TOKENS) {
  return { model: MODEL_ID, messages: [{ role: 'user' as const, content: prompt }], temperature: 0, max_tokens: maxTokens };
}

describe('wgserve serve', () => {
  let server: Server;
  let openai: OpenAI;

  beforeAll(async () => {
    server = await startServer();
    expect(server.modelId).toBe(MODEL_ID);
    // No retries: a failed request must fail the test, not be sent again.
    openai = new OpenAI({ baseURL: `${server.origin}/v1`, apiKey: 'none', maxRetries: 0 });
  });

  afterAll(async () => {
    // The last test stops the server with SIGTERM; this only cleans up after a failure.
    if (server && server.child.exitCode === null && server.child.signalCode === null) {
      server.child.kill('SIGKILL');
      await server.exited;
    }
  });

  async function health(): Promise<Health> {
    const response = await fetch(`${server.origin}/health`);
    expect(response.status).toBe(200);
    return (await response.json()) as Health;
  }

  /** Waits until the server runs no sequence and holds no KV page (an abort lands within a step). */
  async function expectIdle(): Promise<void> {
    const deadline = Date.now() + 10_000;
    let h = await health();
    while ((h.active_sequences > 0 || h.kv_pages.used > 0) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      h = await health();
    }
    expect(h).toMatchObject({ status: 'ok', active_sequences: 0, kv_pages: { used: 0 } });
  }

  async function streamChat(prompt: string, maxTokens = MAX_TOKENS): Promise<{ text: string; chunks: OpenAI.ChatCompletionChunk[] }> {
    const stream = await openai.chat.completions.create({ ...chatRequest(prompt, maxTokens), stream: true, stream_options: { include_usage: true } });
    const chunks: OpenAI.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    return { text: chunks.map((c) => c.choices[0]?.delta.content ?? '').join(''), chunks };
  }

  describe('chat completions', () => {
    let reference: GenerateJson;
    let answer: OpenAI.ChatCompletion;

    beforeAll(async () => {
      reference = await generateCli(CHAT_PROMPT, MAX_TOKENS, true);
      answer = await openai.chat.completions.create(chatRequest(CHAT_PROMPT));
    });

    it('greedy: the text and token counts of `wgserve generate --chat`', () => {
      expect(answer.object).toBe('chat.completion');
      expect(answer.model).toBe(MODEL_ID);
      expect(answer.choices).toHaveLength(1);
      expect(answer.choices[0].message).toMatchObject({ role: 'assistant', content: reference.text });
      expect(answer.choices[0].finish_reason).toBe(reference.completion_tokens.length < MAX_TOKENS ? 'stop' : 'length');
      expect(answer.usage).toMatchObject({
        prompt_tokens: reference.prompt_tokens.length,
        completion_tokens: reference.completion_tokens.length,
        total_tokens: reference.prompt_tokens.length + reference.completion_tokens.length,
      });
    });

    it('streaming with include_usage: the deltas make the same text, usage rides on the last chunk', async () => {
      const { text, chunks } = await streamChat(CHAT_PROMPT);
      expect(text).toBe(answer.choices[0].message.content);
      expect(chunks[0].choices[0].delta.role).toBe('assistant');
      expect(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === chunks[0].id)).toBe(true);
      const last = chunks.at(-1)!;
      expect(last.choices).toEqual([]);
      expect(last.usage).toMatchObject({ prompt_tokens: answer.usage!.prompt_tokens, completion_tokens: answer.usage!.completion_tokens });
      expect(chunks.slice(0, -1).every((c) => !c.usage)).toBe(true);
      expect(chunks.at(-2)!.choices[0].finish_reason).toBe(answer.choices[0].finish_reason);
    });

    it('4 concurrent streams: each equals its own non-streaming answer', async () => {
      const prompts = ['Natasha', 'The old count', 'Pierre said', 'War'];
      const alone: string[] = [];
      for (const p of prompts) alone.push((await openai.chat.completions.create(chatRequest(p))).choices[0].message.content ?? '');
      const together = await Promise.all(prompts.map((p) => streamChat(p)));
      expect(together.map((t) => t.text)).toEqual(alone);
      expect(new Set(alone).size, 'different prompts, different answers').toBeGreaterThan(1);
    });
  });

  describe('prefix cache', () => {
    it('a repeated long prompt reports cached_tokens (whole pages) and the same text; another cache_salt misses', async () => {
      const messages = [
        { role: 'system' as const, content: 'You are a careful reader of War and Peace who answers in one short sentence about the Rostov family.' },
        { role: 'user' as const, content: 'Who is Natasha?' },
      ];
      const ask = (salt: string) => openai.chat.completions.create({ ...chatRequest(CHAT_PROMPT), messages, ...{ cache_salt: salt } });
      const first = await ask('e2e-a');
      const second = await ask('e2e-a');
      const other = await ask('e2e-b');
      const prompt = first.usage!.prompt_tokens;
      expect(prompt).toBeGreaterThan(16);
      expect(first.usage!.prompt_tokens_details?.cached_tokens).toBe(0);
      expect(second.usage!.prompt_tokens_details?.cached_tokens).toBe(Math.floor((prompt - 1) / 16) * 16);
      expect(other.usage!.prompt_tokens_details?.cached_tokens).toBe(0);
      expect(new Set([first, second, other].map((r) => r.choices[0].message.content)).size).toBe(1);
    });
  });

  describe('text completions', () => {
    it('greedy, whole and streamed: the text of `wgserve generate` (no template)', async () => {
      const reference = await generateCli(TEXT_PROMPT, MAX_TOKENS, false);
      const request = { model: MODEL_ID, prompt: TEXT_PROMPT, temperature: 0, max_tokens: MAX_TOKENS };
      const whole = await openai.completions.create(request);
      expect(whole.object).toBe('text_completion');
      expect(whole.choices[0].text).toBe(reference.text);
      expect(whole.usage).toMatchObject({ prompt_tokens: reference.prompt_tokens.length, completion_tokens: reference.completion_tokens.length });

      const stream = await openai.completions.create({ ...request, stream: true, stream_options: { include_usage: true } });
      const chunks: OpenAI.Completion[] = [];
      for await (const chunk of stream) chunks.push(chunk);
      expect(chunks.map((c) => c.choices[0]?.text ?? '').join('')).toBe(reference.text);
      expect(chunks.at(-1)!.usage).toMatchObject({ completion_tokens: reference.completion_tokens.length });
    });
  });

  it('models.list() and models.retrieve() name the served model', async () => {
    const list = await openai.models.list();
    expect(list.data.map((m) => m.id)).toEqual([MODEL_ID]);
    expect(list.data[0]).toMatchObject({ object: 'model', owned_by: 'wgserve' });
    expect((await openai.models.retrieve(MODEL_ID)).id).toBe(MODEL_ID);
    await expect(openai.models.retrieve('gpt-4')).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });

  describe('clients that leave', () => {
    it('a stream aborted after a few chunks stops its sequence; the server goes on serving', async () => {
      const before = (await health()).served;
      const controller = new AbortController();
      const stream = await openai.chat.completions.create(
        { ...chatRequest(CHAT_PROMPT, LONG_TOKENS), stream: true },
        { signal: controller.signal },
      );
      const reasons: (string | null)[] = [];
      // openai's stream ends quietly when its signal aborts.
      for await (const chunk of stream) {
        reasons.push(chunk.choices[0]?.finish_reason ?? null);
        if (reasons.length === 4) controller.abort();
      }
      expect(reasons.length).toBeGreaterThanOrEqual(4);
      expect(reasons.every((r) => r === null), 'the stream was cut, not finished').toBe(true);
      await expectIdle();
      const after = (await health()).served;
      expect(after.sequences - before.sequences).toBe(1);
      expect(after.generated_tokens - before.generated_tokens, 'tokens generated before the abort landed').toBeLessThan(LONG_TOKENS / 2);
      const next = await openai.chat.completions.create(chatRequest('Natasha', 4));
      expect(next.choices[0].finish_reason).toBe('length');
      expect(server.stderr()).toMatch(/^wgserve: POST \/v1\/chat\/completions 200 [\d.]+s \(client closed\)$/m);
    });

    it('a non-streaming request whose client leaves stops its sequence too', async () => {
      const before = (await health()).served;
      const controller = new AbortController();
      const pending = fetch(`${server.origin}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(chatRequest(CHAT_PROMPT, LONG_TOKENS)),
        signal: controller.signal,
      });
      await waitFor(async () => (await health()).active_sequences === 1);
      controller.abort();
      await expect(pending).rejects.toThrow();
      await expectIdle();
      const after = (await health()).served;
      expect(after.sequences - before.sequences).toBe(1);
      expect(after.generated_tokens - before.generated_tokens).toBeLessThan(LONG_TOKENS / 2);
    });
  });

  describe('errors, as the client sees them', () => {
    async function rejection(request: Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
      const error: unknown = await request.then(() => null, (e: unknown) => e);
      expect(error).toBeInstanceOf(OpenAI.APIError);
      return error as InstanceType<typeof OpenAI.APIError>;
    }

    it('an empty cache_salt: BadRequestError naming the field', async () => {
      const error = await rejection(openai.chat.completions.create({ ...chatRequest(CHAT_PROMPT), ...{ cache_salt: '' } }));
      expect(error.status).toBe(400);
      expect(error.param).toBe('cache_salt');
    });

    it('temperature "hot": BadRequestError naming the field, streaming or not', async () => {
      const bad = { ...chatRequest(CHAT_PROMPT), temperature: 'hot' as unknown as number };
      for (const request of [openai.chat.completions.create(bad), openai.chat.completions.create({ ...bad, stream: true })]) {
        const error = await rejection(request);
        expect(error).toBeInstanceOf(OpenAI.BadRequestError);
        expect(error.message).toContain('temperature');
        expect(error.param).toBe('temperature');
        expect(error.type).toBe('invalid_request_error');
      }
    });

    it('no messages: BadRequestError naming messages', async () => {
      const error = await rejection(openai.chat.completions.create({ ...chatRequest(CHAT_PROMPT), messages: [] }));
      expect(error).toBeInstanceOf(OpenAI.BadRequestError);
      expect(error.message).toContain('messages');
    });

    it(`a prompt longer than the ${CONTEXT_LENGTH}-token context: BadRequestError context_length_exceeded`, async () => {
      const error = await rejection(openai.completions.create({ model: MODEL_ID, prompt: 'war and peace '.repeat(200), max_tokens: 4 }));
      expect(error).toBeInstanceOf(OpenAI.BadRequestError);
      expect(error.code).toBe('context_length_exceeded');
      expect(error.message).toContain(String(CONTEXT_LENGTH));
    });

    it('an unknown model: NotFoundError', async () => {
      const error = await rejection(openai.chat.completions.create({ ...chatRequest(CHAT_PROMPT), model: 'gpt-4o' }));
      expect(error).toBeInstanceOf(OpenAI.NotFoundError);
      expect(error.message).toContain('gpt-4o');
    });

    it('malformed JSON: 400 in OpenAI\'s error shape', async () => {
      const response = await fetch(`${server.origin}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"messages": [' });
      expect(response.status).toBe(400);
      const body = (await response.json()) as { error: { message: string; type: string } };
      expect(body.error.type).toBe('invalid_request_error');
      expect(body.error.message).toMatch(/not valid JSON/);
    });

    it('an unknown route: 404; a wrong method: 405 with Allow; both OpenAI-shaped', async () => {
      const unknown = await fetch(`${server.origin}/v1/embeddings`, { method: 'POST', body: '{}' });
      expect(unknown.status).toBe(404);
      expect(((await unknown.json()) as { error: { type: string } }).error.type).toBe('not_found_error');
      const wrong = await fetch(`${server.origin}/v1/completions`);
      expect(wrong.status).toBe(405);
      expect(wrong.headers.get('allow')).toBe('POST');
      expect(((await wrong.json()) as { error: { message: string } }).error.message).toContain('GET');
    });

    it('CORS: a preflight is answered, responses allow any origin', async () => {
      const preflight = await fetch(`${server.origin}/v1/chat/completions`, {
        method: 'OPTIONS',
        headers: { origin: 'http://example.com', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' },
      });
      expect(preflight.status).toBe(204);
      expect(preflight.headers.get('access-control-allow-origin')).toBe('*');
      expect(preflight.headers.get('access-control-allow-headers')).toContain('authorization');
      expect((await fetch(`${server.origin}/v1/models`)).headers.get('access-control-allow-origin')).toBe('*');
    });
  });

  it('SIGTERM during a stream: the stream ends with finish_reason "abort", the server exits 0', async () => {
    const stream = await openai.chat.completions.create({ ...chatRequest(CHAT_PROMPT, LONG_TOKENS), stream: true });
    const reasons: (string | null)[] = [];
    let chunks = 0;
    for await (const chunk of stream) {
      if (++chunks === 3) server.child.kill('SIGTERM');
      reasons.push(chunk.choices[0]?.finish_reason ?? null);
    }
    expect(reasons.at(-1)).toBe('abort');
    expect(await server.exited, server.stderr()).toBe(0);
    expect(server.stderr()).toMatch(/^wgserve: SIGTERM, shutting down$/m);
  });
});

describe('wgserve serve --no-prefix-cache', () => {
  it('computes every prompt: a repeated prompt reports cached_tokens 0', async () => {
    const server = await startServer(['--no-prefix-cache']);
    try {
      const openai = new OpenAI({ baseURL: `${server.origin}/v1`, apiKey: 'none', maxRetries: 0 });
      const messages = [{ role: 'user' as const, content: 'Prince Andrew looked at the old count and Natasha ran into the drawing room.' }];
      const usages = [];
      for (let i = 0; i < 2; i++) usages.push((await openai.chat.completions.create({ ...chatRequest(CHAT_PROMPT, 2), messages })).usage!);
      expect(usages[0].prompt_tokens).toBeGreaterThan(16);
      expect(usages.map((u) => u.prompt_tokens_details?.cached_tokens)).toEqual([0, 0]);
    } finally {
      server.child.kill('SIGTERM');
      expect(await server.exited).toBe(0);
    }
  });
});

describe('wgserve serve --policy workflow', () => {
  it('takes metadata and priority through the openai client, keeps the agent\'s pages, serves /metrics and ends workflows', async () => {
    const server = await startServer(['--policy', 'workflow']);
    try {
      const openai = new OpenAI({ baseURL: `${server.origin}/v1`, apiKey: 'none', maxRetries: 0 });
      const metadata = { workflow_id: 'job "1"', agent_id: 'planner' };
      const opening = { role: 'user' as const, content: 'Prince Andrew looked at the old count and Natasha ran into the drawing room.' };
      const first = await openai.chat.completions.create({ ...chatRequest(CHAT_PROMPT, 4), messages: [opening], metadata, priority: -1 } as never) as OpenAI.ChatCompletion;
      expect(first.usage!.prompt_tokens).toBeGreaterThan(16);
      const messages = [opening, { role: 'assistant' as const, content: first.choices[0].message.content ?? '' }, { role: 'user' as const, content: 'And then?' }];
      const second = await openai.chat.completions.create({ ...chatRequest(CHAT_PROMPT, 4), messages, metadata } as never) as OpenAI.ChatCompletion;
      expect(second.usage!.prompt_tokens_details?.cached_tokens).toBeGreaterThan(0);
      await expect(openai.chat.completions.create({ ...chatRequest(CHAT_PROMPT, 1), metadata: { workflow_id: 5 } } as never)).rejects.toMatchObject({ status: 400, param: 'metadata.workflow_id' });
      const metrics = await fetch(`${server.origin}/metrics`);
      expect(metrics.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
      const families = parsePrometheus(await metrics.text());
      expect(promValue(families, 'wgserve_agent_calls_total', { workflow: 'job "1"', agent: 'planner' })).toBe(2);
      expect(promValue(families, 'wgserve_kv_pages', { state: 'retained' })).toBeGreaterThan(0);
      const end = await fetch(`${server.origin}/v1/workflows/${encodeURIComponent('job "1"')}`, { method: 'DELETE' });
      expect(await end.json()).toEqual({ id: 'job "1"', object: 'workflow.deleted', deleted: true });
      const after = parsePrometheus(await (await fetch(`${server.origin}/metrics`)).text());
      expect(promValue(after, 'wgserve_kv_pages', { state: 'retained' })).toBe(0);
      expect(promValue(after, 'wgserve_workflow_completion_seconds', { workflow: 'job "1"' })).toBeGreaterThan(0);
    } finally {
      server.child.kill('SIGTERM');
      expect(await server.exited).toBe(0);
    }
  });
});

describe('wgserve serve: bad flags and a taken port', () => {
  /** Runs `wgserve serve ...args` to its exit. */
  function serveExit(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [BIN, 'serve', ...args], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
      child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
      const timer = setTimeout(() => child.kill('SIGKILL'), START_TIMEOUT_MS);
      child.on('error', reject);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    });
  }

  it.each([
    ['port', 'abc'],
    ['port', '70000'],
    ['kv-memory', '0'],
    ['kv-format', 'q5_1'],
    ['max-batch-tokens', '1.5'],
    ['policy', 'lifo'],
    ['numerics', 'exact'],
  ])('--%s %s: exit 1, naming the flag', async (flag, value) => {
    const r = await serveExit([`--${flag}=${value}`]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(`--${flag} must be`);
    expect(r.stdout).toBe('');
  });

  it('a port already in use: exit 1 with the reason (after closing the GPU)', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    try {
      const r = await serveExit(['--port', String((taken.address() as AddressInfo).port)]);
      expect(r.code, r.stderr).toBe(1);
      expect(r.stderr).toContain('EADDRINUSE');
      expect(r.stdout).toBe('');
    } finally {
      taken.close();
    }
  });
});

async function waitFor(condition: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('timed out waiting for a condition');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
