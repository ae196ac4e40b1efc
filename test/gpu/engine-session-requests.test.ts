// The engine requests the Prompt API sessions are built on: max_tokens 0 prefills and generates
// nothing, tokenize counts what a request would prefill, add_generation_prompt: false and
// continue_final_message render the chat as vLLM does.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError, renderChat, type Engine } from '../../src/index.js';
import { shippedEngine } from '../helpers/engine.js';

const messages = [{ role: 'user' as const, content: 'Prince Andrew looked at' }];

describe('Engine: prefill-only requests, tokenize, continue_final_message', () => {
  let engine: Engine;
  beforeAll(async () => {
    engine = await shippedEngine();
  });
  afterAll(() => engine?.destroy());

  const render = (list: { role: string; content: string }[], addGenerationPrompt: boolean) => {
    const tok = engine.model!.tokenizer;
    return renderChat(engine.model!.chatTemplate, list, { addGenerationPrompt, bosToken: tok.bosText, eosToken: tok.eosText, fallback: 'chatml' });
  };

  it('max_tokens 0 computes the prompt and returns no tokens, finish_reason length', async () => {
    const r = await engine.chat.completions.create({ messages, max_tokens: 0 });
    const counted = await engine.tokenize({ messages });
    expect(r.choices[0].message.content).toBe('');
    expect(r.choices[0].finish_reason).toBe('length');
    expect(r.usage.completion_tokens).toBe(0);
    expect(r.usage.prompt_tokens).toBe(counted.count);
    expect(counted.max_model_len).toBe(256);
    const m = engine.metrics();
    expect(m.pagesUsed).toBe(0);
    engine.core!.scheduler.checkInvariants();
  });

  it('a streamed prefill-only request ends with one finish chunk and no text', async () => {
    const chunks = [];
    for await (const c of await engine.chat.completions.create({ messages, max_completion_tokens: 0, stream: true })) chunks.push(c);
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    expect(text).toBe('');
    expect(chunks.at(-1)!.choices[0].finish_reason).toBe('length');
  });

  it('tokenize counts the rendered chat; add_generation_prompt: false leaves the assistant header out', async () => {
    const tok = engine.model!.tokenizer;
    const withHeader = await engine.tokenize({ messages });
    const without = await engine.tokenize({ messages, add_generation_prompt: false });
    expect(withHeader.tokens).toEqual(tok.encodeChatPrompt(render(messages, true)));
    expect(without.tokens).toEqual(tok.encodeChatPrompt(render(messages, false)));
    expect(without.count).toBeLessThanOrEqual(withHeader.count);
    expect(withHeader.tokens.slice(0, without.count)).toEqual(without.tokens);
    expect((await engine.tokenize({ messages: [] })).count).toBe(0);
    expect((await engine.tokenize({ prompt: 'Prince Andrew', add_special_tokens: false })).tokens).toEqual(tok.encode('Prince Andrew', { addBos: false }));
    const r = await engine.chat.completions.create({ messages, add_generation_prompt: false, max_tokens: 0 });
    expect(r.usage.prompt_tokens).toBe(without.count);
  });

  it('continue_final_message ends the prompt inside the assistant message, so the model continues its text', async () => {
    const prefix = 'He said';
    const list = [...messages, { role: 'assistant' as const, content: prefix }];
    const counted = await engine.tokenize({ messages: list, continue_final_message: true });
    const expected = render(messages, true) + prefix;
    expect(counted.tokens).toEqual(engine.model!.tokenizer.encodeChatPrompt(expected));
    const r = await engine.chat.completions.create({ messages: list, continue_final_message: true, temperature: 0, max_tokens: 6 });
    const direct = await engine.completions.create({ prompt: counted.tokens, temperature: 0, max_tokens: 6 });
    expect(r.choices[0].message.content).toBe(direct.choices[0].text);
  });

  it('continue_final_message needs an assistant message last and no generation prompt', async () => {
    const err = (p: Promise<unknown>) => p.then(() => null, (e: unknown) => e as ApiError);
    const a = await err(engine.chat.completions.create({ messages, continue_final_message: true }));
    expect(a).toBeInstanceOf(ApiError);
    expect(a!.param).toBe('continue_final_message');
    const b = await err(engine.tokenize({ messages: [...messages, { role: 'assistant', content: 'x' }], continue_final_message: true, add_generation_prompt: true }));
    expect(b!.message).toMatch(/cannot both be true/);
    const c = await err(engine.chat.completions.create({ messages, max_tokens: -1 }));
    expect(c!.param).toBe('max_tokens');
  });
});
