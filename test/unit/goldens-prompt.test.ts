// Every golden case of every model: the prompt tokens llama.cpp computed. Chat cases are rendered
// from their messages with the model's own template and must give llama.cpp's prompt text and tokens.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Metadata, parseGgufHeader } from '../../src/model/gguf.js';
import { Tokenizer } from '../../src/model/tokenizer.js';
import { CHATML_TEMPLATE, renderChat } from '../../src/model/chat-template.js';
import { GOLDEN_MODELS, golden, modelPath } from '../helpers/shared.js';

function tokenizerOf(file: string): Tokenizer {
  const bytes = new Uint8Array(readFileSync(modelPath(file)));
  return Tokenizer.fromMetadata(new Metadata(parseGgufHeader(bytes, file, bytes.byteLength).metadata, file));
}

function render(tok: Tokenizer, messages: { role: string; content: string }[]): string {
  return renderChat(tok.chatTemplate, messages, { addGenerationPrompt: true, bosToken: tok.bosText, eosToken: tok.eosText });
}

// What each file holds: which have a chat template, and so chat cases.
const HAS_TEMPLATE: Record<string, boolean> = {
  'llama-2-tiny-random.gguf': false,
  'wg-llama-spm-f32.gguf': true,
  'wg-llama-spm-f16.gguf': true,
  'wg-llama-spm-q8_0.gguf': true,
  'wg-llama-spm-q4_0.gguf': true,
  'wg-llama-spm-q4_k_m.gguf': true,
  'wg-llama3-bpe-q8_0.gguf': true,
  'wg-tolstoy-f32.gguf': true,
  'wg-tolstoy-q8_0.gguf': true,
};

describe.each(GOLDEN_MODELS)('%s', (file) => {
  const tok = tokenizerOf(file);
  const cases = golden(file).cases;

  it.each(cases.map((c, i) => [i, c] as const))('case %i: prompt tokens as llama.cpp', (_, c) => {
    expect(tok.encode(c.prompt, { addBos: c.add_bos, parseSpecial: c.parse_special })).toEqual(c.prompt_tokens);
  });

  it('has a chat case exactly when the file has a chat template', () => {
    expect(tok.chatTemplate !== undefined).toBe(HAS_TEMPLATE[file]);
    expect(cases.some((c) => c.messages)).toBe(HAS_TEMPLATE[file]);
  });

  const chatCases = cases.filter((c) => c.messages);
  if (chatCases.length > 0) it('chat cases: rendered from the messages with the file template, then tokenized', () => {
    for (const c of chatCases) {
      const prompt = render(tok, c.messages!);
      expect(prompt).toBe(c.prompt);
      expect(tok.encode(prompt, { addBos: c.add_bos, parseSpecial: true })).toEqual(c.prompt_tokens);
      // Without being told add_bos: BOS only when the template did not write it.
      expect(tok.encodeChatPrompt(prompt)).toEqual(c.prompt_tokens);
    }
  });
});

describe('a model without a chat template (llama-2-tiny-random)', () => {
  const tok = tokenizerOf('llama-2-tiny-random.gguf');
  const messages = [{ role: 'user', content: 'Hi' }];

  it('fails clearly unless a fallback is asked for', () => {
    expect(() => render(tok, messages)).toThrow(/no chat template \(tokenizer\.chat_template is missing\)/);
  });

  it("falls back to ChatML like llama.cpp's server, whose markers this vocabulary spells out as text", () => {
    const prompt = renderChat(undefined, messages, {
      addGenerationPrompt: true, bosToken: tok.bosText, eosToken: tok.eosText, fallback: 'chatml',
    });
    expect(prompt).toBe('<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n');
    expect(renderChat(CHATML_TEMPLATE, messages, { addGenerationPrompt: true, bosToken: '', eosToken: '' })).toBe(prompt);
    const ids = tok.encodeChatPrompt(prompt);
    expect(ids[0]).toBe(1);
    expect(tok.decode(ids.slice(1))).toBe(prompt);
  });
});
