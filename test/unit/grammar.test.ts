// XGrammar over our tokenizers (no GPU): the vocabulary is read the way the tokenizer decodes it
// (byte-fallback SentencePiece, byte-level BPE), so the tokens of a valid output are allowed one by
// one, and a schema or grammar XGrammar rejects is a GrammarError with its reason.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { allowsAll, Grammars, GrammarError, type Constraint } from '../../src/engine/grammar/grammars.js';
import { Utf8Guard } from '../../src/engine/grammar/utf8-guard.js';
import { toolGrammar } from '../../src/engine/tools/index.js';
import { Metadata, parseGgufHeader } from '../../src/model/gguf.js';
import { Tokenizer } from '../../src/model/tokenizer.js';
import { modelPath } from '../helpers/shared.js';

function tokenizerOf(file: string): Tokenizer {
  const bytes = new Uint8Array(readFileSync(modelPath(file)));
  return Tokenizer.fromMetadata(new Metadata(parseGgufHeader(bytes, file, bytes.byteLength).metadata, file));
}

/** A null mask allows every token. */
const allowed = (mask: Uint32Array | null, id: number) => !mask || ((mask[id >>> 5] >>> (id & 31)) & 1) === 1;

async function walk(constraint: Constraint, ids: number[]): Promise<void> {
  for (const id of ids) {
    expect(allowed(await constraint.nextMask(), id)).toBe(true);
    expect(constraint.accept(id)).toBe(true);
  }
}

/**
 * The tokenizer's split of `text` as generated output (no SentencePiece space prefix): the text
 * after a newline, whose tokens carry the prefix.
 */
function tokensOf(tokenizer: Tokenizer, text: string): number[] {
  const ids = tokenizer.encode(`\n${text}`, { addBos: false });
  const bytes = ids.map((id) => [...tokenizer.tokenToBytes(id)]);
  const want = [...new TextEncoder().encode(text)].join();
  const start = bytes.findIndex((_, k) => bytes.slice(k).flat().join() === want);
  expect(start).toBeGreaterThan(0);
  return ids.slice(start);
}

const SCHEMA = JSON.stringify({
  type: 'object',
  properties: { name: { type: 'string' }, age: { type: 'integer' }, tags: { type: 'array', items: { enum: ['a', 'ü€'] } } },
  required: ['name', 'age', 'tags'],
});
const VALID = '{"name": "Pierre Bezúkhov", "age": 27, "tags": ["ü€", "a"]}';

describe.each([
  ['wg-tolstoy-q8_0.gguf', 'byte_fallback'],
  ['wg-llama3-bpe-q8_0.gguf', 'byte_level'],
])('grammars over %s', (file, vocabType) => {
  const tokenizer = tokenizerOf(file);

  it(`reads the vocabulary as ${vocabType} and walks a valid output to its stop token`, async () => {
    expect(tokenizer.grammarVocabulary().vocabType).toBe(vocabType);
    const grammars = await Grammars.create(tokenizer, tokenizer.vocabSize);
    const constraint = await (await grammars.compile({ type: 'json_schema', schema: SCHEMA })).matcher();
    await walk(constraint, tokensOf(tokenizer, VALID));
    const end = await constraint.nextMask();
    const open = [...Array(tokenizer.vocabSize).keys()].filter((id) => allowed(end, id));
    expect(open).toEqual(tokenizer.eotIds);
    expect(constraint.terminated).toBe(false);
    expect(constraint.accept(tokenizer.eotIds[0])).toBe(true);
    expect(constraint.terminated).toBe(true);
    constraint.dispose();
    grammars.dispose();
  });

  it('forbids what the schema forbids', async () => {
    const grammars = await Grammars.create(tokenizer, tokenizer.vocabSize);
    const constraint = await (await grammars.compile({ type: 'json_object' })).matcher();
    const first = await constraint.nextMask();
    const open = [...Array(tokenizer.vocabSize).keys()].filter((id) => allowed(first, id)).map((id) => tokenizer.decode([id]));
    expect(open.length).toBeGreaterThan(0);
    for (const text of open) expect(text.trimStart().startsWith('{')).toBe(true);
    grammars.dispose();
  });
});

describe('a mask that allows every token', () => {
  it('is told apart from one that bans any token of the vocabulary (bits past the vocabulary do not count)', () => {
    const vocab = 70; // three words, the last one partial
    const full = new Uint32Array([0xffffffff, 0xffffffff, 0b111111]);
    expect(allowsAll(full, vocab)).toBe(true);
    expect(allowsAll(new Uint32Array([0xffffffff, 0xffffffff, 0xffffffff]), vocab)).toBe(true);
    for (const t of [0, 31, 32, 69]) {
      const banned = full.slice();
      banned[t >>> 5] &= ~(1 << (t & 31));
      expect(allowsAll(banned, vocab), `token ${t}`).toBe(false);
    }
    expect(allowsAll(new Uint32Array([0xffffffff, 0xffffffff]), 64)).toBe(true);
  });

  it('is not what a mask that bans tokens is: such a mask comes back whole, and is counted', async () => {
    const tokenizer = tokenizerOf('wg-tolstoy-q8_0.gguf');
    const grammars = await Grammars.create(tokenizer, tokenizer.vocabSize);
    const constraint = await (await grammars.compile({ type: 'json_object' })).matcher();
    expect(await constraint.nextMask()).not.toBeNull(); // only '{' may start
    expect(grammars.stats).toMatchObject({ masks: 1, skipped: 0 });
    grammars.dispose();
  });
});

describe('the UTF-8 guard', () => {
  const tokenizer = tokenizerOf('wg-tolstoy-q8_0.gguf');
  const byteToken = (b: number) => tokenizer.grammarVocabulary().pieces.indexOf(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
  const allowedBytes = (guard: Utf8Guard) => {
    const mask = new Uint32Array(Math.ceil(tokenizer.vocabSize / 32)).fill(0xffffffff);
    guard.restrict(mask);
    return Array.from({ length: 256 }, (_, b) => b).filter((b) => allowed(mask, byteToken(b)));
  };
  const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

  // Inside a character the grammar itself allows only continuation bytes; the guard narrows those.
  it('allows only bytes that keep the output well-formed UTF-8 (Unicode table 3-7)', () => {
    const continuing = (guard: Utf8Guard) => allowedBytes(guard).filter((b) => b >= 0x80);
    const guard = new Utf8Guard(Utf8Guard.partialTokens(tokenizer), (id) => tokenizer.tokenToBytes(id, false));
    expect(allowedBytes(guard)).toEqual([...range(0, 0x7f), ...range(0xc2, 0xf4)]);
    guard.accept(byteToken(0xf0));
    expect(continuing(guard)).toEqual(range(0x90, 0xbf)); // no overlong 4-byte forms
    guard.accept(byteToken(0x9f));
    guard.accept(byteToken(0x98));
    expect(continuing(guard)).toEqual(range(0x80, 0xbf));
    guard.accept(byteToken(0x80));
    guard.accept(byteToken(0xed));
    expect(continuing(guard)).toEqual(range(0x80, 0x9f)); // no surrogates
    guard.accept(byteToken(0x80));
    guard.accept(byteToken(0x80));
    guard.accept(byteToken(0xf4));
    expect(continuing(guard)).toEqual(range(0x80, 0x8f)); // nothing above U+10FFFF
  });
});

describe('structural tags (tool calls)', () => {
  const tokenizer = tokenizerOf('wg-tolstoy-q8_0.gguf');

  it('hold JSON in tags to the compact layout, and JSON strings free of control characters', async () => {
    const grammars = await Grammars.create(tokenizer, tokenizer.vocabSize);
    const spec = toolGrammar('hermes', [{ name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } }], 'required', false)!;
    const constraint = await (await grammars.compile(spec)).matcher();
    await walk(constraint, tokensOf(tokenizer, '<tool_call>\n{"name": "get_weather", "arguments": {'));
    const afterBrace = await constraint.nextMask();
    const open = [...Array(tokenizer.vocabSize).keys()].filter((id) => allowed(afterBrace, id)).map((id) => tokenizer.tokenToPiece(id));
    expect(open.every((text) => text.startsWith('"'))).toBe(true); // no whitespace: compact JSON
    await walk(constraint, tokensOf(tokenizer, '"city": "Mo'));
    const inString = await constraint.nextMask();
    const byte = (b: number) => tokenizer.grammarVocabulary().pieces.indexOf(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    for (const b of [0x00, 0x01, 0x0a, 0x1f]) expect(allowed(inString, byte(b)), `byte ${b}`).toBe(false);
    expect(allowed(inString, byte(0x73))).toBe(true);
    grammars.dispose();
  });
});

describe('the grammar cache', () => {
  const tokenizer = tokenizerOf('wg-tolstoy-q8_0.gguf');

  it('compiles a spec once, and a matcher outlives its grammar\'s eviction', async () => {
    const grammars = await Grammars.create(tokenizer, tokenizer.vocabSize);
    const spec = { type: 'grammar' as const, grammar: 'root ::= "yes" | "no"' };
    const compiled = await grammars.compile(spec);
    expect(await grammars.compile(spec)).toBe(compiled);
    const constraint = await compiled.matcher();
    for (let i = 0; i < 40; i++) await grammars.compile({ type: 'grammar', grammar: `root ::= "${i}"` });
    expect(await grammars.compile(spec)).not.toBe(compiled); // evicted, compiled again
    await walk(constraint, tokensOf(tokenizer, 'yes'));
    expect(constraint.accept(tokenizer.eotIds[0])).toBe(true);
    expect(constraint.terminated).toBe(true);
    grammars.dispose();
  });
});

describe('grammar errors', () => {
  const tokenizer = tokenizerOf('wg-tolstoy-q8_0.gguf');

  it('names what XGrammar rejects, and survives many rejections', async () => {
    const grammars = await Grammars.create(tokenizer, tokenizer.vocabSize);
    await expect(grammars.compile({ type: 'json_schema', schema: '{"type": 5}' })).rejects.toThrow(/Type should be a string/);
    await expect(grammars.compile({ type: 'grammar', grammar: 'root ::= "a" |' })).rejects.toThrow(GrammarError);
    await expect(grammars.compile({ type: 'grammar', grammar: 'root ::= "a" |' })).rejects.toThrow(/EBNF parser error/);
    // Each rejection aborts a wasm instance; a hundred of them must not wear out the one that serves.
    for (let i = 0; i < 100; i++) await expect(grammars.compile({ type: 'grammar', grammar: `root ::= "${i}" |` })).rejects.toThrow(GrammarError);
    const constraint = await (await grammars.compile({ type: 'grammar', grammar: 'root ::= "yes" | "no"' })).matcher();
    await walk(constraint, tokensOf(tokenizer, 'no'));
    grammars.dispose();
  });
});
