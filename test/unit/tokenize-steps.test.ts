// Tokenizing in steps (encodeAsync gives the event loop back between parts) must give exactly
// encode()'s tokens, and the length bound used to refuse long prompts before tokenizing them must
// never exceed the real count.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Metadata, parseGgufHeader } from '../../src/model/gguf.js';
import { Tokenizer } from '../../src/model/tokenizer.js';
import { rng } from '../helpers/random.js';
import { golden, modelPath } from '../helpers/shared.js';

const MODELS = ['wg-llama-spm-q8_0.gguf', 'wg-llama3-bpe-q8_0.gguf', 'wg-tolstoy-q8_0.gguf', 'llama-2-tiny-random.gguf'];

function tokenizerOf(file: string): Tokenizer {
  const bytes = readFileSync(modelPath(file));
  return Tokenizer.fromMetadata(new Metadata(parseGgufHeader(bytes, file, bytes.byteLength).metadata, file));
}

/** Texts of many shapes: the goldens' prompts, mixed scripts, emoji, runs of spaces and newlines, no spaces at all. */
function texts(seed: number): string[] {
  const r = rng(seed);
  const prompts = golden('wg-llama3-bpe-q8_0.gguf').cases.map((c) => c.prompt);
  const alphabet = ['a', 'b', 'the', ' ', '  ', '\n', '\n\n', '\t', 'é', 'ü', 'ß', '日本', '語', '😀', '👩‍👩‍👧', "'s", '123', '.', ',', '<s>', '</s>', '<|eot_id|>', '▁', 'Prince', 'Andrew'];
  const random = Array.from({ length: 6 }, () => Array.from({ length: 3000 }, () => alphabet[Math.floor(r() * alphabet.length)]).join(''));
  return [
    prompts.join('\n').repeat(20),
    'x'.repeat(5000),
    ' '.repeat(3000) + 'end',
    'Prince Andrew looked at the sky.'.repeat(300),
    ...random,
  ];
}

describe('encodeAsync', () => {
  it.each(MODELS)('%s: the same tokens as encode(), in many steps', async (file) => {
    const tok = tokenizerOf(file);
    for (const [i, text] of texts(7).entries()) {
      for (const parseSpecial of [false, true]) {
        let pauses = 0;
        const steps = await tok.encodeAsync(text, { parseSpecial }, 64, async () => void pauses++);
        expect(steps, `text ${i}, parseSpecial ${parseSpecial}`).toEqual(tok.encode(text, { parseSpecial }));
        // The goldens' prompts, and one 5000-character word (no place to cut: the merges pause).
        if (i <= 1) expect(pauses, `text ${i} is encoded in steps`).toBeGreaterThan(10);
      }
    }
    const chat = '<|im_start|>user\nHello there<|im_end|>\n<|im_start|>assistant\n'.repeat(200);
    expect(await tok.encodeChatPromptAsync(chat, 50, async () => {})).toEqual(tok.encodeChatPrompt(chat));
  });
});

describe('minTokens', () => {
  it.each(MODELS)('%s: never more than the real count, and grows with the text', (file) => {
    const tok = tokenizerOf(file);
    for (const text of texts(9)) {
      for (const parseSpecial of [false, true]) {
        expect(tok.minTokens(text)).toBeLessThanOrEqual(tok.encode(text, { parseSpecial, addBos: false }).length);
      }
    }
    // Loose (llama3 has 256-byte pieces of spaces) but enough to refuse a megabyte for a 2k context.
    expect(tok.minTokens('a'.repeat(1_000_000))).toBeGreaterThan(3000);
  });
});
