// An agent framework against `wgserve serve`: the Vercel AI SDK with its OpenAI-compatible
// provider runs a two-step tool-using agent (step 1: the model must call get_weather, which the
// SDK executes; step 2: the model answers in text with the result in its context). The shipped
// model writes prose, so step 1 forces the call (toolChoice 'required').
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { generateText, stepCountIs, tool } from 'ai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { startServer, stopServer, type Server } from '../helpers/server.js';

const Weather = z.object({ city: z.string().max(12), unit: z.enum(['celsius', 'fahrenheit']) });

describe('the Vercel AI SDK (openai-compatible provider) running a tool-using agent on wgserve serve', () => {
  let server: Server;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(() => stopServer(server));

  it('calls the tool with valid arguments, feeds back its result and finishes with text', async () => {
    const provider = createOpenAICompatible({ name: 'wgserve', baseURL: `${server.origin}/v1`, apiKey: 'none' });
    const calls: z.infer<typeof Weather>[] = [];
    const result = await generateText({
      model: provider(server.modelId),
      prompt: 'Weather in Moscow?',
      tools: {
        get_weather: tool({
          description: 'Current weather',
          inputSchema: Weather,
          execute: async (args) => {
            calls.push(args);
            return { temperature: -5 };
          },
        }),
      },
      // The prose model calls the tool only when made to; then it writes the answer.
      prepareStep: ({ stepNumber }) => (stepNumber === 0 ? { toolChoice: 'required' } : { toolChoice: 'none', maxOutputTokens: 24 }),
      // One call per response: a prose model allowed parallel calls goes on adding them.
      providerOptions: { wgserve: { parallel_tool_calls: false } },
      stopWhen: stepCountIs(2),
      maxOutputTokens: 160,
      temperature: 0,
      maxRetries: 0,
    });
    expect(calls).toHaveLength(1);
    expect(Weather.parse(calls[0])).toEqual(calls[0]);
    expect(result.steps).toHaveLength(2);
    expect(result.steps[0].finishReason).toBe('tool-calls');
    expect(result.steps[0].toolResults[0]).toMatchObject({ toolName: 'get_weather', output: { temperature: -5 } });
    expect(result.text.length).toBeGreaterThan(0);
  });
});
