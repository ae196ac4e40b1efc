// Test page: a tab of the origin using the Service Worker's OpenAI API, with fetch and with the
// official `openai` client (test/e2e/service-worker.test.ts drives it through Playwright).
import OpenAI from 'openai';
import { zodFunction, zodResponseFormat } from 'openai/helpers/zod';
import type { z } from 'zod';
import { Person, Weather } from './structured-schemas.js';

interface Streamed {
  text: string;
  finishReason: string | null;
  /** performance.timeOrigin + now of the first and last content chunk, to see overlap across tabs. */
  firstAt: number;
  lastAt: number;
}

/** What the `openai` client's structured-output and tool helpers gave, against the Service Worker. */
export interface OpenAiHelperResults {
  parse: { finishReason: string; parsed: unknown }[];
  badSchema: { isBadRequest: boolean; param: string | null };
  toolCall: { finishReason: string; name: string; parsedArguments: unknown };
  runTools: { seen: unknown[]; toolMessages: number };
}

declare global {
  interface Window {
    sw: {
      register(): Promise<void>;
      models(): Promise<unknown>;
      chat(content: string, maxTokens: number): Promise<{ status: number; started: string | null; body: { choices?: { message: { content: string } }[]; error?: unknown } }>;
      stream(content: string, maxTokens: number, loseDeviceAfter?: number): Promise<Streamed & { deviceLost: boolean }>;
      openai(content: string, maxTokens: number): Promise<{ text: string; streamed: string; models: string[] }>;
      openaiHelpers(): Promise<OpenAiHelperResults>;
    };
  }
}

const now = () => performance.timeOrigin + performance.now();
const chatBody = (content: string, maxTokens: number, stream = false) =>
  JSON.stringify({ messages: [{ role: 'user', content }], temperature: 0, max_tokens: maxTokens, stream });

window.sw = {
  async register() {
    await // The default model is the shipped one; '?model=URL' on the script URL picks another.
    await navigator.serviceWorker.register('/workers/service-worker.ts', { type: 'module', scope: '/' });
    await navigator.serviceWorker.ready;
    if (!navigator.serviceWorker.controller) {
      await new Promise((resolve) => navigator.serviceWorker.addEventListener('controllerchange', resolve, { once: true }));
    }
    document.getElementById('status')!.textContent = 'controlled';
  },
  async models() {
    return (await fetch('/v1/models')).json();
  },
  async chat(content, maxTokens) {
    const r = await fetch('/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: chatBody(content, maxTokens) });
    return { status: r.status, started: r.headers.get('x-wgserve-engine-started'), body: await r.json() };
  },
  /** With loseDeviceAfter, the Service Worker's GPU device is destroyed after that many content chunks. */
  async stream(content, maxTokens, loseDeviceAfter) {
    const r = await fetch('/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: chatBody(content, maxTokens, true) });
    const out = { text: '', finishReason: null as string | null, firstAt: 0, lastAt: 0, deviceLost: false };
    let contentChunks = 0;
    let lost: Promise<boolean> | null = null;
    const reader = r.body!.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const event = buffer.slice(0, end).replace(/^data: /, '');
        buffer = buffer.slice(end + 2);
        if (event === '[DONE]') continue;
        const chunk = JSON.parse(event) as { choices: { delta: { content?: string }; finish_reason: string | null }[] };
        const text = chunk.choices[0]?.delta.content;
        if (text) {
          out.firstAt ||= now();
          out.lastAt = now();
          out.text += text;
          if (++contentChunks === loseDeviceAfter) lost = loseDevice();
        }
        out.finishReason = chunk.choices[0]?.finish_reason ?? out.finishReason;
      }
    }
    out.deviceLost = (await lost) ?? false;
    return out;
  },
  async openai(content, maxTokens) {
    const client = new OpenAI({ baseURL: `${location.origin}/v1`, apiKey: 'none', dangerouslyAllowBrowser: true });
    const messages = [{ role: 'user' as const, content }];
    const whole = await client.chat.completions.create({ model: 'wg-tolstoy-q8_0', messages, temperature: 0, max_tokens: maxTokens });
    const stream = await client.chat.completions.create({ model: 'wg-tolstoy-q8_0', messages, temperature: 0, max_tokens: maxTokens, stream: true });
    let streamed = '';
    for await (const chunk of stream) streamed += chunk.choices[0]?.delta.content ?? '';
    const models = (await client.models.list()).data.map((m) => m.id);
    return { text: whole.choices[0].message.content ?? '', streamed, models };
  },
  /**
   * The client's helpers, run in this page against the Service Worker's /v1: chat.completions.parse
   * with a zod response format (greedy and sampled) and with zodFunction tools, a schema the
   * engine rejects, and runTools calling a function. The prose model needs the grammar for each.
   */
  async openaiHelpers() {
    const client = new OpenAI({ baseURL: `${location.origin}/v1`, apiKey: 'none', dangerouslyAllowBrowser: true, maxRetries: 0 });
    const model = 'wg-tolstoy-q8_0';
    const parse: OpenAiHelperResults['parse'] = [];
    for (const [temperature, seed] of [[0, 1], [1, 2]]) {
      const completion = await client.chat.completions.parse({
        model, messages: [{ role: 'user', content: 'Who is Pierre?' }], response_format: zodResponseFormat(Person, 'person'), temperature, seed, max_tokens: 120,
      });
      parse.push({ finishReason: completion.choices[0].finish_reason, parsed: completion.choices[0].message.parsed });
    }
    const error = await client.chat.completions.create({
      model, messages: [{ role: 'user', content: 'x' }], response_format: { type: 'json_schema', json_schema: { name: 'bad', schema: { type: 5 } as never } },
    }).then(() => null, (e: unknown) => e);
    const badSchema = { isBadRequest: error instanceof OpenAI.BadRequestError, param: error instanceof OpenAI.BadRequestError ? (error.param ?? null) : null };
    // parallel_tool_calls: false, or the prose model goes on adding calls until max_tokens.
    const withTool = await client.chat.completions.parse({
      model, messages: [{ role: 'user', content: 'Weather in Moscow?' }], tools: [zodFunction({ name: 'get_weather', parameters: Weather })],
      tool_choice: 'required', parallel_tool_calls: false, temperature: 0.8, seed: 4, max_tokens: 220,
    });
    const call = withTool.choices[0].message.tool_calls?.[0];
    const toolCall = {
      finishReason: withTool.choices[0].finish_reason,
      name: call?.type === 'function' ? call.function.name : '',
      parsedArguments: call?.type === 'function' ? call.function.parsed_arguments : null,
    };
    const seen: unknown[] = [];
    const runner = client.chat.completions.runTools({
      model, messages: [{ role: 'user', content: 'Weather in Moscow?' }], max_tokens: 220, temperature: 0,
      tool_choice: { type: 'function', function: { name: 'get_weather' } },
      tools: [zodFunction({
        name: 'get_weather', parameters: Weather,
        function: (args: z.infer<typeof Weather>) => {
          seen.push(args);
          return { temperature: -5 };
        },
      })],
    });
    await runner.done();
    return { parse, badSchema, toolCall, runTools: { seen, toolMessages: runner.messages.filter((m) => m.role === 'tool').length } };
  },
};

/** Asks the Service Worker to destroy its engine's GPU device (its test-only message). */
function loseDevice(): Promise<boolean> {
  const channel = new MessageChannel();
  const reply = new Promise<boolean>((resolve) => (channel.port1.onmessage = (e) => resolve(e.data as boolean)));
  navigator.serviceWorker.controller!.postMessage({ type: 'wgserve:lose-device-for-testing' }, [channel.port2]);
  return reply;
}
