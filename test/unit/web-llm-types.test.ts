// wgserve's Engine against @mlc-ai/web-llm's own published types: an app written against
// MLCEngineInterface keeps type-checking when it imports wgserve instead. The checks are the
// assignments below (tsc runs before the tests); the test itself checks the members exist.
// web-llm's chat and completions are classes with private fields (nominal), so their `create`
// methods are compared; its embeddings, resumable sessions and low-level members come later.
import type * as webllm from '@mlc-ai/web-llm';
import type * as openai from 'openai/resources';
import { describe, expect, it } from 'vitest';
import { Engine, type ChatCompletion, type ChatCompletionChunk, type Completion } from '../../src/index.js';

type LifecycleMembers = 'reload' | 'unload' | 'resetChat' | 'interruptGenerate' | 'getMessage' | 'runtimeStatsText' | 'setInitProgressCallback' | 'getInitProgressCallback';

/** What a web-llm app uses of its engine. */
type WebLlmSurface = Pick<webllm.MLCEngineInterface, LifecycleMembers> & {
  chat: { completions: Pick<webllm.MLCEngineInterface['chat']['completions'], 'create'> };
  completions: Pick<webllm.MLCEngineInterface['completions'], 'create'>;
};

// The engine is usable wherever web-llm's engine is.
export const asWebLlm = (engine: Engine): WebLlmSurface => engine;

// web-llm's requests are accepted as they are.
export const chatRequest = (r: webllm.ChatCompletionRequestNonStreaming, e: Engine): Promise<ChatCompletion> => e.chat.completions.create(r);
export const streamRequest = (r: webllm.ChatCompletionRequestStreaming, e: Engine): Promise<AsyncIterable<ChatCompletionChunk>> => e.chat.completions.create(r);
export const textRequest = (r: webllm.CompletionCreateParamsNonStreaming, e: Engine): Promise<Completion> => e.completions.create(r);

// Responses are web-llm's types, and OpenAI's (whose finish_reason has no 'abort').
type OpenAiFinish<T> = Omit<T, 'finish_reason'> & { finish_reason: Exclude<ChatCompletion['choices'][number]['finish_reason'], 'abort'> };
export const asWebLlmCompletion = (c: ChatCompletion): webllm.ChatCompletion => c;
export const asWebLlmChunk = (c: ChatCompletionChunk): webllm.ChatCompletionChunk => c;
export const asOpenAiCompletion = (c: ChatCompletion): Omit<openai.ChatCompletion, 'choices'> => c;
export const asOpenAiChoice = (c: OpenAiFinish<ChatCompletion['choices'][number]>): openai.ChatCompletion.Choice => c;
export const asOpenAiUsage = (u: ChatCompletion['usage']): openai.CompletionUsage => u;

describe('web-llm MLCEngineInterface compatibility', () => {
  it('an Engine has every member a web-llm app calls', () => {
    const engine = new Engine();
    const members: (LifecycleMembers | 'chat' | 'completions')[] = [
      'reload', 'unload', 'resetChat', 'interruptGenerate', 'getMessage', 'runtimeStatsText', 'setInitProgressCallback', 'getInitProgressCallback', 'chat', 'completions',
    ];
    for (const m of members) expect(engine[m], m).toBeDefined();
    expect(typeof engine.chat.completions.create).toBe('function');
    expect(typeof engine.completions.create).toBe('function');
  });
});
