// `wgserve generate`: streams a continuation of --prompt to stdout; speed goes to stderr.
import { generate } from '../engine/generate.js';
import { defaultKvMemoryBytes, KvCache } from '../kv/index.js';
import { ForwardPass, renderChat, StreamingDecoder, type Model } from '../model/index.js';
import { parseNumber, parseNumerics, withModel } from './session.js';

export interface GenerateCliOptions {
  model?: string;
  prompt?: string;
  'max-tokens'?: string;
  temperature?: string;
  seed?: string;
  json?: boolean;
  chat?: boolean;
  numerics?: string;
}

export async function generateCommand(opts: GenerateCliOptions): Promise<number> {
  if (opts.prompt === undefined) throw new Error('generate needs --prompt TEXT');
  const maxTokens = parseNumber(opts['max-tokens'], 'max-tokens', 64, { integer: true, min: 1 });
  const temperature = parseNumber(opts.temperature, 'temperature', 0, { min: 0 });
  const seed = parseNumber(opts.seed, 'seed', Date.now() % 2 ** 31, { integer: true, min: 0, max: 2 ** 32 - 1 });
  const numerics = parseNumerics(opts.numerics);
  return withModel(opts.model, async (model) => {
    const promptIds = encodePrompt(model, opts.prompt!, !!opts.chat);
    // Sized like the server's (the same out-of-memory error), and the context is what it holds.
    const kv = await KvCache.allocate(model.rt, model.config, { memoryBytes: defaultKvMemoryBytes(model.config, model.config.contextLength) });
    const contextLength = Math.min(model.config.contextLength, kv.tokenCapacity);
    if (promptIds.length >= contextLength) {
      kv.destroy();
      throw new Error(`the prompt has ${promptIds.length} tokens; the context holds ${contextLength} (at most ${contextLength - 1} prompt tokens)`);
    }
    const forward = new ForwardPass(model, { numerics });
    const decoder = new StreamingDecoder(model.tokenizer);
    let text = '';
    try {
      // Compile the pipelines of this prompt's prefill and of decode first, so the speeds
      // printed below measure generation, not one-time shader compilation.
      await generate(forward, kv, [{ promptIds, maxTokens: 2 }], { contextLength });
      const start = performance.now();
      let firstTokenAt = 0;
      const [result] = await generate(forward, kv, [{
        promptIds,
        maxTokens,
        temperature,
        seed,
        stopIds: model.tokenizer.eotIds,
        onToken: (id) => {
          firstTokenAt ||= performance.now();
          const piece = decoder.push(id);
          text += piece;
          if (!opts.json) process.stdout.write(piece);
        },
      }], { contextLength });
      const tail = decoder.flush();
      text += tail;
      const end = performance.now();
      if (opts.json) {
        process.stdout.write(JSON.stringify({ prompt_tokens: promptIds, completion_tokens: result.tokens, text }) + '\n');
      } else {
        process.stdout.write(tail + '\n');
      }
      reportSpeed(promptIds.length, result.tokens.length, start, firstTokenAt || end, end);
    } finally {
      forward.destroy();
      kv.destroy();
    }
    return 0;
  });
}

function encodePrompt(model: Model, prompt: string, chat: boolean): number[] {
  if (!chat) return model.tokenizer.encode(prompt);
  const rendered = renderChat(model.chatTemplate, [{ role: 'user', content: prompt }], {
    addGenerationPrompt: true,
    bosToken: model.tokenizer.bosText,
    eosToken: model.tokenizer.eosText,
  });
  return model.tokenizer.encodeChatPrompt(rendered);
}

function reportSpeed(promptTokens: number, generated: number, start: number, firstToken: number, end: number): void {
  const prefillS = (firstToken - start) / 1000;
  const decodeS = (end - firstToken) / 1000;
  const decodeRate = generated > 1 && decodeS > 0 ? ((generated - 1) / decodeS).toFixed(1) : 'n/a';
  console.error(`prompt: ${promptTokens} tokens, ${(promptTokens / prefillS).toFixed(1)} tokens/s | generation: ${generated} tokens, ${decodeRate} tokens/s`);
}
