// Byte-level BPE as llama.cpp's llm_tokenizer_bpe does it: a pre-tokenizer regex splits the
// text into words, each word's UTF-8 bytes are mapped to printable characters (GPT-2's byte
// encoding), and adjacent symbols are merged lowest merge rank first.

import { PriorityQueue } from './tokenizer-spm.js';

// Python/Rust regexes use \s; JS's \s differs (it has U+FEFF, lacks U+0085), so the
// Unicode White_Space property spells out exactly what llama.cpp's tables hold.
const S = '\\p{White_Space}';
const NOT_S = '\\P{White_Space}';
// JS has no inline (?i:...) group: the case-insensitive contractions are spelled out, as
// llama.cpp itself does.
const CONTRACTIONS_ANY_CASE = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])";

const LLAMA3_REGEX = new RegExp(
  `${CONTRACTIONS_ANY_CASE}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^${S}\\p{L}\\p{N}]+[\\r\\n]*|${S}*[\\r\\n]+|${S}+(?!${NOT_S})|${S}+`,
  'gu',
);
const QWEN2_REGEX = new RegExp(
  `${CONTRACTIONS_ANY_CASE}|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^${S}\\p{L}\\p{N}]+[\\r\\n]*|${S}*[\\r\\n]+|${S}+(?!${NOT_S})|${S}+`,
  'gu',
);
const GPT2_REGEX = new RegExp(
  `'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^${S}\\p{L}\\p{N}]+|${S}+(?!${NOT_S})`,
  'gu',
);

export interface BpePreTokenizer {
  /** Regex whose matches (and the text between them) are the words merges stay within. */
  readonly regex: RegExp;
  /** A word that is itself a vocabulary entry is emitted whole, without merging. */
  readonly ignoreMerges: boolean;
  /** The model adds BOS unless the file says otherwise. */
  readonly addBos: boolean;
  /** Detokenization removes the space before punctuation and some contractions. */
  readonly cleanSpaces: boolean;
}

const LLAMA3: BpePreTokenizer = { regex: LLAMA3_REGEX, ignoreMerges: true, addBos: true, cleanSpaces: true };
const GPT2: BpePreTokenizer = { regex: GPT2_REGEX, ignoreMerges: false, addBos: false, cleanSpaces: true };
const QWEN2: BpePreTokenizer = { regex: QWEN2_REGEX, ignoreMerges: false, addBos: false, cleanSpaces: false };

// tokenizer.ggml.pre values, grouped as llama-vocab.cpp groups them.
const PRE_TOKENIZERS: Record<string, BpePreTokenizer> = {
  'llama3': LLAMA3, 'llama-v3': LLAMA3, 'llama-bpe': LLAMA3, 'falcon3': LLAMA3, 'falcon-h1': LLAMA3,
  'pixtral': LLAMA3, 'midm-2.0': LLAMA3, 'lfm2': LLAMA3,
  'gpt-2': GPT2, 'phi-2': GPT2, 'jina-es': GPT2, 'jina-de': GPT2, 'gigachat': GPT2, 'jina-v2-es': GPT2,
  'jina-v2-de': GPT2, 'a.x-4.0': GPT2, 'mellum': GPT2, 'exaone4': GPT2,
  'qwen2': QWEN2, 'deepseek-r1-qwen': QWEN2,
};

/** The pre-tokenizer llama.cpp uses for a `tokenizer.ggml.pre` value, if it is one supported here. */
export function findBpePreTokenizer(pre: string): BpePreTokenizer | undefined {
  return Object.hasOwn(PRE_TOKENIZERS, pre) ? PRE_TOKENIZERS[pre] : undefined;
}

export const SUPPORTED_BPE_PRE_TOKENIZERS: readonly string[] = Object.keys(PRE_TOKENIZERS);

/** Splits text into pre-tokenizer words: every match, and any text between matches. */
export function splitWords(text: string, regex: RegExp): string[] {
  const words: string[] = [];
  let end = 0;
  for (const match of text.matchAll(regex)) {
    const at = match.index ?? 0;
    if (at > end) words.push(text.slice(end, at));
    words.push(match[0]);
    end = at + match[0].length;
  }
  if (end < text.length) words.push(text.slice(end));
  return words;
}

// GPT-2's byte encoding: printable Latin-1 bytes stand for themselves, the others are shifted
// to code points from 256 up, so every byte is one visible character.
const BYTE_TO_CHAR: string[] = [];
const CHAR_TO_BYTE = new Map<string, number>();
{
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let shifted = 0;
  for (let b = 0; b < 256; b++) {
    const ch = String.fromCharCode(printable(b) ? b : 256 + shifted++);
    BYTE_TO_CHAR[b] = ch;
    CHAR_TO_BYTE.set(ch, b);
  }
}

export function byteEncode(bytes: Uint8Array): string {
  let out = '';
  for (const b of bytes) out += BYTE_TO_CHAR[b];
  return out;
}

/** Bytes of a byte-encoded vocabulary entry, or undefined if a character is not a byte char. */
export function byteDecode(text: string): Uint8Array | undefined {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) {
    const b = CHAR_TO_BYTE.get(text[i]);
    if (b === undefined) return undefined;
    out[i] = b;
  }
  return out;
}

interface Bigram {
  left: number;
  right: number;
  rank: number;
  text: string;
}

const bigramBefore = (a: Bigram, b: Bigram): boolean => a.rank < b.rank || (a.rank === b.rank && a.left < b.left);

/** Runs a generator to its end and returns its result. */
function drain<T>(steps: Generator<void, T>): T {
  for (;;) {
    const next = steps.next();
    if (next.done) return next.value;
  }
}

const utf8 = new TextEncoder();
const WORD_CACHE_LIMIT = 50_000;

export class BpeEncoder {
  private readonly ranks = new Map<string, number>();
  private readonly cache = new Map<string, readonly number[]>();

  constructor(
    private readonly ids: ReadonlyMap<string, number>,
    merges: readonly string[],
    private readonly pre: BpePreTokenizer,
  ) {
    merges.forEach((merge, rank) => {
      // llama.cpp splits at the first space after the first character; the first duplicate wins.
      const split = merge.indexOf(' ', 1);
      if (split < 0) return;
      const key = `${merge.slice(0, split)} ${merge.slice(split + 1)}`;
      if (!this.ranks.has(key)) this.ranks.set(key, rank);
    });
  }

  /** Appends the tokens of `text` (no special tokens in it) to `out`. */
  encode(text: string, out: number[]): void {
    for (const _ of this.encodeInSteps(text, out, Infinity));
  }

  /**
   * encode(), pausing (yielding) after about every `stepChars` characters. Words are encoded
   * independently, so the steps give exactly encode()'s tokens.
   */
  *encodeInSteps(text: string, out: number[], stepChars: number): Generator<void> {
    let chars = 0;
    for (const word of splitWords(text, this.pre.regex)) {
      // A word longer than a step is merged in steps too (not cached: it is unlikely to come again).
      const ids = word.length > stepChars ? yield* this.mergeWord(byteEncode(utf8.encode(word)), stepChars) : this.encodeWord(word);
      for (const id of ids) out.push(id);
      chars += word.length;
      if (chars >= stepChars) {
        chars = 0;
        yield;
      }
    }
  }

  /** Whether every byte has a token, so no text is dropped and each token covers at least one byte. */
  get coversEveryByte(): boolean {
    for (let b = 0; b < 256; b++) if (!this.ids.has(byteEncode(Uint8Array.of(b)))) return false;
    return true;
  }

  private encodeWord(word: string): readonly number[] {
    let ids = this.cache.get(word);
    if (!ids) {
      ids = drain(this.mergeWord(byteEncode(utf8.encode(word)), Infinity));
      if (this.cache.size >= WORD_CACHE_LIMIT) this.cache.clear();
      this.cache.set(word, ids);
    }
    return ids;
  }

  /** The tokens of one byte-encoded word, pausing (yielding) after every `stepMerges` merges. */
  private *mergeWord(encoded: string, stepMerges: number): Generator<void, number[]> {
    let merges = 0;
    const whole = this.ids.get(encoded);
    if (this.pre.ignoreMerges && whole !== undefined) return [whole];
    const symbols = encoded.split('');
    const next = symbols.map((_, i) => (i + 1 < symbols.length ? i + 1 : -1));
    const prev = symbols.map((_, i) => i - 1);
    const queue = new PriorityQueue<Bigram>(bigramBefore);
    const tryAdd = (left: number, right: number): void => {
      if (left < 0 || right < 0) return;
      const rank = this.ranks.get(`${symbols[left]} ${symbols[right]}`);
      if (rank !== undefined) queue.push({ left, right, rank, text: symbols[left] + symbols[right] });
    };
    for (let i = 1; i < symbols.length; i++) tryAdd(i - 1, i);

    for (let bigram = queue.pop(); bigram; bigram = queue.pop()) {
      const { left, right } = bigram;
      if (!symbols[left] || !symbols[right] || symbols[left] + symbols[right] !== bigram.text) continue;
      if (++merges >= stepMerges) {
        merges = 0;
        yield;
      }
      symbols[left] = bigram.text;
      symbols[right] = '';
      next[left] = next[right];
      if (next[right] >= 0) prev[next[right]] = left;
      tryAdd(prev[left], left);
      tryAdd(left, next[left]);
    }
    return this.symbolsToIds(symbols.filter((s) => s.length > 0));
  }

  private symbolsToIds(symbols: string[]): number[] {
    const out: number[] = [];
    for (const symbol of symbols) {
      const id = this.ids.get(symbol);
      if (id !== undefined) {
        out.push(id);
        continue;
      }
      // A symbol the merges built but the vocabulary lacks: emit its bytes (dropped if absent).
      for (const ch of symbol) {
        const byteId = this.ids.get(ch);
        if (byteId !== undefined) out.push(byteId);
      }
    }
    return out;
  }
}
