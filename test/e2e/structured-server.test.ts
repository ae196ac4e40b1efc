// Structured output and tool calls through `wgserve serve` with the official `openai` client's
// helpers: chat.completions.parse with a zod response format, zodFunction tools with parsed
// arguments, the streaming helper assembling tool-call deltas, and runTools calling a function.
// The shipped model writes prose; the grammar makes every answer well formed. Its tokenizer
// spells JSON mostly byte by byte, so a tool call takes about 100 tokens.
import OpenAI from 'openai';
import { zodFunction, zodResponseFormat } from 'openai/helpers/zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { startServer, stopServer, type Server } from '../helpers/server.js';
import { Person, Weather } from './pages/structured-schemas.js';

describe('wgserve serve with the openai client\'s structured-output and tool helpers', () => {
  let server: Server;
  let openai: OpenAI;
  let model: string;

  beforeAll(async () => {
    server = await startServer();
    model = server.modelId;
    openai = new OpenAI({ baseURL: `${server.origin}/v1`, apiKey: 'none', maxRetries: 0 });
  });
  afterAll(() => stopServer(server));

  it('chat.completions.parse with a zod schema: message.parsed is a valid person, greedy and sampled', async () => {
    for (const [temperature, seed] of [[0, 1], [1, 2], [1, 3]]) {
      const completion = await openai.chat.completions.parse({
        model, messages: [{ role: 'user', content: 'Who is Pierre?' }], response_format: zodResponseFormat(Person, 'person'),
        temperature, seed, max_tokens: 120,
      });
      const message = completion.choices[0].message;
      expect(completion.choices[0].finish_reason).toBe('stop');
      expect(Person.parse(message.parsed)).toEqual(message.parsed);
    }
  });

  it('a schema the server cannot compile comes back as the client\'s BadRequestError naming response_format', async () => {
    const error = await openai.chat.completions.create({
      model, messages: [{ role: 'user', content: 'x' }], response_format: { type: 'json_schema', json_schema: { name: 'bad', schema: { type: 5 } as never } },
    }).then(() => null, (e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect((error as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('response_format');
  });

  // parallel_tool_calls: false, or the prose model goes on adding calls until max_tokens.
  it('zodFunction tools with tool_choice "required": parsed_arguments of a well-formed call', async () => {
    const completion = await openai.chat.completions.parse({
      model, messages: [{ role: 'user', content: 'Weather in Moscow?' }], tools: [zodFunction({ name: 'get_weather', parameters: Weather })],
      tool_choice: 'required', parallel_tool_calls: false, temperature: 0.8, seed: 4, max_tokens: 220,
    });
    const choice = completion.choices[0];
    expect(choice.finish_reason).toBe('tool_calls');
    const call = choice.message.tool_calls![0];
    expect(call.type).toBe('function');
    if (call.type !== 'function') return;
    expect(call.function.name).toBe('get_weather');
    expect(Weather.parse(call.function.parsed_arguments)).toEqual(call.function.parsed_arguments);
  });

  it('the streaming helper assembles the streamed tool-call deltas into the same call', async () => {
    const body = {
      model, messages: [{ role: 'user' as const, content: 'Weather?' }], tools: [zodFunction({ name: 'get_weather', parameters: Weather })],
      tool_choice: { type: 'function' as const, function: { name: 'get_weather' } }, temperature: 0.9, seed: 6, max_tokens: 220,
    };
    const whole = await openai.chat.completions.create(body);
    const final = await openai.chat.completions.stream(body).finalChatCompletion();
    expect(final.choices[0].finish_reason).toBe('tool_calls');
    const call = final.choices[0].message.tool_calls![0];
    if (call.type !== 'function') throw new Error('not a function call');
    const wholeCall = whole.choices[0].message.tool_calls![0];
    if (wholeCall.type !== 'function') throw new Error('not a function call');
    expect(call.function.arguments).toBe(wholeCall.function.arguments);
    expect(Weather.parse(call.function.parsed_arguments)).toEqual(JSON.parse(call.function.arguments));
  });

  it('runTools calls the named function with the model\'s arguments, then returns its result to the model', async () => {
    const seen: z.infer<typeof Weather>[] = [];
    const runner = openai.chat.completions.runTools({
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
    expect(seen).toHaveLength(1);
    expect(Weather.parse(seen[0])).toEqual(seen[0]);
    const toolMessages = runner.messages.filter((m) => m.role === 'tool');
    expect(toolMessages).toHaveLength(1);
  });
});
