// The model's tokenizer, built from GGUF metadata alone and matching llama.cpp's
// llama-vocab.cpp: vocabulary types "llama" (SentencePiece) and "gpt2" (byte-level BPE),
// special-token parsing, BOS/EOS handling, end-of-generation ids and detokenization.

import type { Metadata } from './gguf.js';
import { SpmEncoder } from './tokenizer-spm.js';
import { BpeEncoder, byteDecode, findBpePreTokenizer, SUPPORTED_BPE_PRE_TOKENIZERS } from './tokenizer-bpe.js';
import type { PieceSource } from './detokenizer.js';

/** Token attributes, as llama.cpp's llama_token_attr bits. */
const Attr = {
  UNDEFINED: 0,
  UNKNOWN: 1 << 0,
  UNUSED: 1 << 1,
  NORMAL: 1 << 2,
  CONTROL: 1 << 3,
  USER_DEFINED: 1 << 4,
  BYTE: 1 << 5,
} as const;

/** tokenizer.ggml.token_type values (llama_token_type) → attributes. */
const TYPE_TO_ATTR: readonly number[] = [
  Attr.UNDEFINED, Attr.NORMAL, Attr.UNKNOWN, Attr.CONTROL, Attr.USER_DEFINED, Attr.UNUSED, Attr.BYTE,
];

// Token texts llama.cpp treats as end of generation whatever the metadata says.
const EOG_TEXTS = new Set([
  '<|eot_id|>', '<|im_end|>', '<|end|>', '<|return|>', '<|call|>', '<|flush|>', '<|calls|>', '<end_of_turn>',
  '<|endoftext|>', '</s>', '<|eom_id|>', '<EOT>', '_<EOT>', '[EOT]', '[EOS]', '<|end_of_text|>',
  '<end_of_utterance>', '<eos>', '<turn|>', '<|tool_response>', '<｜end▁of▁sentence｜>', '[e~[',
]);
// Texts llama.cpp auto-detects as the EOT token, and FIM pad/repo/separator tokens (also EOG).
const EOT_TEXTS = new Set([
  '<|eot_id|>', '<|im_end|>', '<|end|>', '<end_of_turn>', '<|endoftext|>', '<|end_of_text|>', '<EOT>', '_<EOT>',
  '[EOT]', '<｜end▁of▁sentence｜>', '<end_of_utterance>',
]);
const FIM_EOG_TEXTS = new Set([
  '<|fim_pad|>', '<fim-pad>', '<fim_pad>', '<PAD>', '[PAD]',
  '<|fim_repo|>', '<|repo_name|>', '<fim-repo>', '<REPO>', '<reponame>',
  '<|file_sep|>',
]);

const SPACE_MARK = '\u2581'; // ▁, SentencePiece's escaped space
const EMPTY = new Uint8Array(0);
const utf8 = new TextEncoder();
const utf8Text = (bytes: Uint8Array) => new TextDecoder('utf-8', { ignoreBOM: true }).decode(bytes);

export class TokenizerError extends Error {
  constructor(message: string, readonly source = 'model') {
    super(`${source}: ${message}`);
    this.name = 'TokenizerError';
  }
}

export interface EncodeOptions {
  /** Prepend BOS. Default: what the file says (tokenizer.ggml.add_bos_token, else llama.cpp's default). */
  addBos?: boolean;
  /** Append EOS. Default: tokenizer.ggml.add_eos_token (false when absent). */
  addEos?: boolean;
  /** Turn the text of control tokens (e.g. `<|eot_id|>`, `<s>`) into those tokens. Default false. */
  parseSpecial?: boolean;
}

export interface DecodeOptions {
  /** Render control tokens as their text. Default false (they contribute nothing). */
  special?: boolean;
  /** Drop a leading BOS and a trailing EOS the tokenizer would have added. Default false. */
  removeSpecial?: boolean;
}

/** Text pieces and special-token ids, in order. */
type Fragment = string | number;

interface VocabData {
  pieces: string[];
  scores: Float32Array;
  attrs: Uint16Array;
  ids: Map<string, number>;
}

interface SpecialIds {
  bos: number | undefined;
  eos: number | undefined;
  eot: number | undefined;
  eom: number | undefined;
  unk: number | undefined;
}

type Kind = 'spm' | 'bpe';

interface TokenizerParts {
  kind: Kind;
  vocab: VocabData;
  special: SpecialIds;
  eog: number[];
  addBos: boolean;
  addEos: boolean;
  addSpacePrefix: boolean;
  cleanSpaces: boolean;
  chatTemplate: string | undefined;
  /** Encodes text without special tokens into `out`, pausing (yielding) after about every `stepChars` characters. */
  encodeText: (text: string, out: number[], stepChars: number) => Generator<void>;
  /** Whether every byte of any text gets a token (none is dropped). */
  coversEveryByte: boolean;
}

export class Tokenizer implements PieceSource {
  readonly kind: Kind;
  readonly vocabSize: number;
  readonly bosId: number | undefined;
  readonly eosId: number | undefined;
  readonly unknownId: number | undefined;
  /** Whether encode() adds BOS / EOS when not told otherwise. */
  readonly addBos: boolean;
  readonly addEos: boolean;
  /** tokenizer.chat_template, when the file has one. */
  readonly chatTemplate: string | undefined;

  private readonly vocab: VocabData;
  private readonly addSpacePrefix: boolean;
  private readonly cleanSpaces: boolean;
  private readonly eogSet: ReadonlySet<number>;
  /** Control, user-defined and unknown tokens, longest text first: the order they are matched in. */
  private readonly specialOrder: readonly number[];
  private readonly encodeText: TokenizerParts['encodeText'];
  private readonly coversEveryByte: boolean;
  private readonly pieceBytes: (Uint8Array | undefined)[];
  private longestPieceBytes = 0;

  private constructor(parts: TokenizerParts) {
    this.kind = parts.kind;
    this.vocab = parts.vocab;
    this.vocabSize = parts.vocab.pieces.length;
    this.bosId = parts.special.bos;
    this.eosId = parts.special.eos;
    this.unknownId = parts.special.unk;
    this.eogSet = new Set(parts.eog);
    this.addBos = parts.addBos;
    this.addEos = parts.addEos;
    this.addSpacePrefix = parts.addSpacePrefix;
    this.cleanSpaces = parts.cleanSpaces;
    this.chatTemplate = parts.chatTemplate;
    this.encodeText = parts.encodeText;
    this.coversEveryByte = parts.coversEveryByte;
    this.specialOrder = specialTokenOrder(parts.vocab);
    this.pieceBytes = new Array<Uint8Array | undefined>(this.vocabSize);
  }

  static fromMetadata(meta: Metadata): Tokenizer {
    const kind = vocabularyKind(meta);
    const vocab = readVocab(meta);
    const special = readSpecialIds(meta, kind, vocab.pieces.length);
    const parts: TokenizerParts = {
      kind,
      vocab,
      special,
      eog: findEogIds(vocab, special),
      chatTemplate: meta.has('tokenizer.chat_template') ? meta.string('tokenizer.chat_template') : undefined,
      addEos: meta.bool('tokenizer.ggml.add_eos_token', false),
      ...(kind === 'spm' ? spmParts(meta, vocab, special) : bpeParts(meta, vocab)),
    };
    const tokenizer = new Tokenizer(parts);
    if (tokenizer.addBos && tokenizer.bosId === undefined) throw new TokenizerError('add_bos_token is true, but there is no BOS token', meta.source);
    if (tokenizer.addEos && tokenizer.eosId === undefined) throw new TokenizerError('add_eos_token is true, but there is no EOS token', meta.source);
    return tokenizer;
  }

  /** Token ids of `text`, as llama.cpp's llama_tokenize(add_special, parse_special). */
  encode(text: string, options: EncodeOptions = {}): number[] {
    const out: number[] = [];
    for (const _ of this.encodeInSteps(text, options, out, Infinity));
    return out;
  }

  /**
   * encode() that gives the event loop back (awaits `pause`) after about every `stepChars`
   * characters, so a long text does not hold up other work. The tokens are exactly encode()'s.
   */
  async encodeAsync(text: string, options: EncodeOptions = {}, stepChars = 16_384, pause: () => Promise<void> = nextTask): Promise<number[]> {
    const out: number[] = [];
    for (const _ of this.encodeInSteps(text, options, out, stepChars)) await pause();
    return out;
  }

  /** encodeChatPrompt() as encodeAsync() runs encode(). */
  encodeChatPromptAsync(prompt: string, stepChars?: number, pause?: () => Promise<void>): Promise<number[]> {
    return this.encodeAsync(prompt, this.chatPromptOptions(prompt), stepChars, pause);
  }

  /**
   * A number of tokens `text` has at least, from its length alone: each token stands for at most
   * the longest piece's bytes, and a string has at least as many UTF-8 bytes as UTF-16 units.
   * 0 when the vocabulary can drop bytes (then no such bound holds).
   */
  minTokens(text: string): number {
    if (!this.coversEveryByte) return 0;
    if (!this.longestPieceBytes) {
      for (let id = 0; id < this.vocabSize; id++) {
        const bytes = Math.max(this.tokenToBytes(id, true).length, utf8.encode(this.vocab.pieces[id]).length);
        this.longestPieceBytes = Math.max(this.longestPieceBytes, bytes, 1);
      }
    }
    return Math.ceil(text.length / this.longestPieceBytes);
  }

  private *encodeInSteps(text: string, options: EncodeOptions, out: number[], stepChars: number): Generator<void> {
    if (options.addBos ?? this.addBos) out.push(this.requireId(this.bosId, 'BOS'));
    const fragments = this.partition(text, options.parseSpecial ?? false);
    if (this.kind === 'spm') yield* this.encodeSpmFragments(fragments, out, stepChars);
    else yield* this.encodeBpeFragments(fragments, out, stepChars);
    if (options.addEos ?? this.addEos) out.push(this.requireId(this.eosId, 'EOS'));
  }

  /**
   * Tokens of a rendered chat prompt, as llama.cpp tokenizes one: special tokens parsed, BOS
   * added when the model adds one unless the template already wrote it at the start.
   */
  encodeChatPrompt(prompt: string): number[] {
    return this.encode(prompt, this.chatPromptOptions(prompt));
  }

  private chatPromptOptions(prompt: string): EncodeOptions {
    const bosText = this.bosText;
    const templateHasBos = bosText !== '' && prompt.startsWith(bosText);
    return { parseSpecial: true, addBos: this.addBos && !templateHasBos };
  }

  /**
   * Text of `ids`, as llama.cpp's llama_detokenize(remove_special, unparse_special = special).
   * SentencePiece: the space the encoder put before the text is taken off the first token, but
   * not when that token is BOS (then the space stays, as in llama.cpp).
   */
  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    const special = options.special ?? false;
    let stripSpace = this.addSpacePrefix;
    let first = 0;
    let end = ids.length;
    if (options.removeSpecial && this.addBos && ids.length > 0 && ids[0] === this.bosId) {
      stripSpace = false;
      first = 1;
    }
    if (options.removeSpecial && this.addEos && end > first && ids[end - 1] === this.eosId) end--;
    const chunks: Uint8Array[] = [];
    for (let i = first; i < end; i++) {
      const bytes = this.tokenToBytes(ids[i], special);
      chunks.push(i === first && stripSpace && bytes[0] === 0x20 ? bytes.subarray(1) : bytes);
    }
    const bytes = concat(chunks);
    return utf8Text(this.cleanSpaces ? cleanUpSpaces(bytes) : bytes);
  }

  /**
   * The bytes token `id` stands for (llama.cpp's token_to_piece; shared, do not modify). Control and unknown tokens give
   * their text when `special` (the default, as common_token_to_piece), nothing otherwise.
   */
  tokenToBytes(id: number, special = true): Uint8Array {
    const attr = this.attr(id);
    if (!special && attr & (Attr.CONTROL | Attr.UNKNOWN)) return EMPTY;
    let bytes = this.pieceBytes[id];
    if (!bytes) {
      bytes = this.pieceToBytes(id, attr);
      this.pieceBytes[id] = bytes;
    }
    return bytes;
  }

  /** tokenToBytes as text; a partial UTF-8 character shows as U+FFFD. */
  tokenToPiece(id: number, special = true): string {
    return utf8Text(this.tokenToBytes(id, special));
  }

  /**
   * The vocabulary as a grammar engine (XGrammar) reads it: each token's piece as stored (▁ and
   * <0xNN> byte pieces for SentencePiece, byte characters for byte-level BPE), with control,
   * unknown and unused tokens as '' so no grammar can spell them; and how to decode the pieces.
   */
  grammarVocabulary(): { pieces: string[]; vocabType: 'byte_fallback' | 'byte_level'; prependSpace: boolean } {
    const hidden = Attr.CONTROL | Attr.UNKNOWN | Attr.UNUSED;
    const pieces = this.vocab.pieces.map((piece, id) => (this.vocab.attrs[id] & hidden ? '' : piece));
    return { pieces, vocabType: this.kind === 'spm' ? 'byte_fallback' : 'byte_level', prependSpace: this.kind === 'spm' && this.addSpacePrefix };
  }

  /** Every token that ends generation (EOS, end of turn, end of message, ...), ascending; a copy. */
  get eotIds(): number[] {
    return [...this.eogSet].sort((a, b) => a - b);
  }

  /** True for tokens that end generation (see eotIds). */
  isEog(id: number): boolean {
    return this.eogSet.has(id);
  }

  /** The BOS token's text for chat templates (`bos_token`), '' when the model has none. */
  get bosText(): string {
    return this.bosId === undefined ? '' : this.tokenToPiece(this.bosId, true);
  }

  /** The EOS token's text for chat templates (`eos_token`), '' when the model has none. */
  get eosText(): string {
    return this.eosId === undefined ? '' : this.tokenToPiece(this.eosId, true);
  }

  private attr(id: number): number {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new TokenizerError(`token id ${id} is outside the vocabulary (0..${this.vocabSize - 1})`);
    }
    return this.vocab.attrs[id];
  }

  private pieceToBytes(id: number, attr: number): Uint8Array {
    const piece = this.vocab.pieces[id];
    if (attr & (Attr.CONTROL | Attr.UNKNOWN | Attr.USER_DEFINED)) return utf8.encode(piece);
    if (attr & Attr.NORMAL) {
      if (this.kind === 'spm') return utf8.encode(piece.replaceAll(SPACE_MARK, ' '));
      // A well-formed byte-level vocabulary only holds byte characters; keep any other text as is.
      return byteDecode(piece) ?? utf8.encode(piece);
    }
    if (attr & Attr.BYTE) return Uint8Array.of(parseInt(piece.slice(3, 5), 16));
    return EMPTY; // unused and undefined tokens print nothing, as in llama.cpp
  }

  private requireId(id: number | undefined, name: string): number {
    if (id === undefined) throw new TokenizerError(`the vocabulary has no ${name} token`);
    return id;
  }

  /** Splits text around special tokens (llama.cpp's tokenizer_st_partition). */
  private partition(text: string, parseSpecial: boolean): Fragment[] {
    let fragments: Fragment[] = text === '' ? [] : [text];
    for (const id of this.specialOrder) {
      if (!parseSpecial && this.vocab.attrs[id] & (Attr.CONTROL | Attr.UNKNOWN)) continue;
      const piece = this.vocab.pieces[id];
      if (!text.includes(piece)) continue;
      fragments = fragments.flatMap((f) => (typeof f === 'number' ? [f] : splitAround(f, piece, id)));
    }
    return fragments;
  }

  private *encodeBpeFragments(fragments: Fragment[], out: number[], stepChars: number): Generator<void> {
    for (const f of fragments) {
      if (typeof f === 'number') out.push(f);
      else yield* this.encodeText(f, out, stepChars);
    }
  }

  private *encodeSpmFragments(fragments: Fragment[], out: number[], stepChars: number): Generator<void> {
    let afterSpecial = true; // the text start counts: SentencePiece prefixes a space there
    for (const f of fragments) {
      if (typeof f === 'number') {
        out.push(f);
        afterSpecial = true;
      } else {
        yield* this.encodeText(this.addSpacePrefix && afterSpecial ? ` ${f}` : f, out, stepChars);
        afterSpecial = false;
      }
    }
  }
}

/** Waits for the next macrotask, so timers and I/O (other requests) run in between. */
function nextTask(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

function splitAround(text: string, piece: string, id: number): Fragment[] {
  const out: Fragment[] = [];
  text.split(piece).forEach((part, i) => {
    if (i > 0) out.push(id);
    if (part !== '') out.push(part);
  });
  return out;
}

function vocabularyKind(meta: Metadata): Kind {
  const model = meta.string('tokenizer.ggml.model');
  if (model === 'llama') return 'spm';
  if (model === 'gpt2') return 'bpe';
  throw new TokenizerError(
    `unsupported tokenizer model '${model}' (tokenizer.ggml.model); supported: 'llama' (SentencePiece), 'gpt2' (byte-level BPE)`,
    meta.source,
  );
}

type EncoderParts = Pick<TokenizerParts, 'addBos' | 'addSpacePrefix' | 'cleanSpaces' | 'encodeText' | 'coversEveryByte'>;

function spmParts(meta: Metadata, vocab: VocabData, special: SpecialIds): EncoderParts {
  const spm = new SpmEncoder({
    ids: vocab.ids,
    scores: vocab.scores,
    byteToken: (byte) => spmByteToken(vocab.ids, byte, special.unk, meta.source),
  });
  return {
    addBos: meta.bool('tokenizer.ggml.add_bos_token', true),
    addSpacePrefix: meta.bool('tokenizer.ggml.add_space_prefix', true),
    cleanSpaces: false,
    encodeText: (text, out, stepChars) => spm.encodeInSteps(text.replaceAll(' ', SPACE_MARK), out, stepChars),
    // Every byte becomes its <0xXX> token or the unknown token (or the vocabulary is refused).
    coversEveryByte: true,
  };
}

function bpeParts(meta: Metadata, vocab: VocabData): EncoderParts {
  const preName = meta.string('tokenizer.ggml.pre', 'default');
  const pre = findBpePreTokenizer(preName);
  if (!pre) {
    throw new TokenizerError(
      `unsupported BPE pre-tokenizer '${preName}' (tokenizer.ggml.pre); supported: ${SUPPORTED_BPE_PRE_TOKENIZERS.join(', ')}`,
      meta.source,
    );
  }
  const merges = meta.strings('tokenizer.ggml.merges');
  if (!merges) throw new TokenizerError('tokenizer.ggml.merges is missing (needed by a gpt2 vocabulary)', meta.source);
  const bpe = new BpeEncoder(vocab.ids, merges, pre);
  return {
    addBos: meta.bool('tokenizer.ggml.add_bos_token', pre.addBos),
    addSpacePrefix: meta.bool('tokenizer.ggml.add_space_prefix', false),
    cleanSpaces: pre.cleanSpaces,
    encodeText: (text, out, stepChars) => bpe.encodeInSteps(text, out, stepChars),
    coversEveryByte: bpe.coversEveryByte,
  };
}

function readVocab(meta: Metadata): VocabData {
  const tokens = meta.strings('tokenizer.ggml.tokens');
  if (!tokens) throw new TokenizerError('tokenizer.ggml.tokens is missing: the file has no vocabulary', meta.source);
  const n = tokens.length;
  const scores = new Float32Array(n);
  const attrs = new Uint16Array(n).fill(Attr.NORMAL);
  const rawScores = meta.numbers('tokenizer.ggml.scores');
  const types = meta.numbers('tokenizer.ggml.token_type');
  if (n === 0) throw new TokenizerError('tokenizer.ggml.tokens is empty: the file has no vocabulary', meta.source);
  if (rawScores && rawScores.length !== n) throw new TokenizerError(`tokenizer.ggml.scores has ${rawScores.length} entries for ${n} tokens`, meta.source);
  if (types && types.length !== n) throw new TokenizerError(`tokenizer.ggml.token_type has ${types.length} entries for ${n} tokens`, meta.source);
  const pieces = new Array<string>(n);
  const ids = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const piece = tokens[i] === '' ? `[EMPTY_${i}]` : tokens[i];
    if (ids.has(piece)) throw new TokenizerError(`duplicate token in vocabulary: '${piece.length > 40 ? piece.slice(0, 40) + '...' : piece}' has ids ${ids.get(piece)} and ${i}`, meta.source);
    ids.set(piece, i);
    pieces[i] = piece;
    if (rawScores) scores[i] = rawScores[i];
    if (types) attrs[i] = TYPE_TO_ATTR[types[i]] ?? Attr.UNDEFINED;
  }
  return { pieces, scores, attrs, ids };
}

function readSpecialIds(meta: Metadata, kind: Kind, size: number): SpecialIds {
  // llama.cpp's defaults per vocabulary type, replaced by the metadata when it is in range.
  const defaults = kind === 'spm' ? { bos: 1, eos: 2, unk: 0 } : { bos: 11, eos: 11, unk: undefined };
  const pick = (key: string, fallback: number | undefined): number | undefined => {
    const inRange = (id: number | undefined) => id !== undefined && id >= 0 && id < size;
    const fromFile = meta.has(key) ? meta.number(key) : undefined;
    if (inRange(fromFile)) return fromFile;
    return inRange(fallback) ? fallback : undefined;
  };
  return {
    bos: pick('tokenizer.ggml.bos_token_id', defaults.bos),
    eos: pick('tokenizer.ggml.eos_token_id', defaults.eos),
    eot: pick('tokenizer.ggml.eot_token_id', undefined),
    eom: pick('tokenizer.ggml.eom_token_id', undefined),
    unk: pick('tokenizer.ggml.unknown_token_id', defaults.unk),
  };
}

/** End-of-generation ids as llama.cpp collects them; marks each as a control token, as it does. */
function findEogIds(vocab: VocabData, special: SpecialIds): number[] {
  const eog = new Set<number>();
  const markControl = (id: number) => (vocab.attrs[id] |= Attr.CONTROL);
  vocab.pieces.forEach((piece, id) => {
    if (special.eot === undefined && EOT_TEXTS.has(piece)) {
      special.eot = id;
      markControl(id);
    }
    if (special.eom === undefined && piece === '<|eom_id|>') {
      special.eom = id;
      markControl(id);
    }
    if (FIM_EOG_TEXTS.has(piece)) {
      eog.add(id);
      markControl(id);
    }
    if (EOG_TEXTS.has(piece)) {
      eog.add(id);
      markControl(id);
    }
  });
  for (const id of [special.eos, special.eot, special.eom]) if (id !== undefined) eog.add(id);
  return [...eog].sort((a, b) => a - b);
}

function specialTokenOrder(vocab: VocabData): number[] {
  const ids: number[] = [];
  vocab.attrs.forEach((attr, id) => {
    if (attr & (Attr.CONTROL | Attr.USER_DEFINED | Attr.UNKNOWN)) ids.push(id);
  });
  // Longest first, so "<|eot_id|>" is matched before any special token inside it.
  return ids.sort((a, b) => vocab.pieces[b].length - vocab.pieces[a].length || a - b);
}

function spmByteToken(ids: ReadonlyMap<string, number>, byte: number, unk: number | undefined, source: string): number {
  const hex = byte.toString(16).toUpperCase().padStart(2, '0');
  const id = ids.get(`<0x${hex}>`) ?? ids.get(String.fromCharCode(byte)) ?? unk;
  if (id === undefined) throw new TokenizerError(`the vocabulary has no token for byte 0x${hex} and no unknown token`, source);
  return id;
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

const SPACE = 0x20;
const APOSTROPHE = 0x27;
const ch = (c: string) => c.charCodeAt(0);

/**
 * llama.cpp's clean_up_tokenization_spaces, pass for pass on the bytes: drops the space before
 * ? ! . , and before 's 'm 're 've, and both spaces around a lone apostrophe.
 */
function cleanUpSpaces(input: Uint8Array): Uint8Array {
  const text = Uint8Array.from(input);
  let total = text.length;
  total = passDropSpaceBeforePunctuation(text, total);
  total = passDropSpacesAroundApostrophe(text, total);
  total = passDropSpaceBeforeContraction(text, total);
  return text.subarray(0, total);
}

function passDropSpaceBeforePunctuation(text: Uint8Array, length: number): number {
  let total = length ? 1 : 0;
  for (let i = 1; i < length; i++) {
    const x = text[i];
    if (text[i - 1] === SPACE && (x === ch('?') || x === ch('!') || x === ch('.') || x === ch(','))) total--;
    text[total++] = x;
  }
  return total;
}

function passDropSpacesAroundApostrophe(text: Uint8Array, length: number): number {
  let total = length ? 1 : 0;
  for (let i = 1; i < length; i++) {
    const x = text[i];
    if (x === APOSTROPHE && i + 1 < length && text[i - 1] === SPACE && text[i + 1] === SPACE) {
      total--;
      text[++i] = 0;
    }
    text[total++] = x;
  }
  return total;
}

function passDropSpaceBeforeContraction(text: Uint8Array, length: number): number {
  let total = length ? 1 : 0;
  for (let i = 1; i < length; i++) {
    const x = text[i];
    if (text[i - 1] === SPACE && x === APOSTROPHE && i + 1 < length) {
      const x1 = text[i + 1];
      const x2 = i + 2 < length ? text[i + 2] : -1;
      const shortForm = x1 === ch('s') || x1 === ch('m');
      const longForm = x2 === ch('e') && (x1 === ch('r') || x1 === ch('v'));
      if (shortForm || longForm) total--;
    }
    text[total++] = x;
  }
  return total;
}
