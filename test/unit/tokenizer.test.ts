// The tokenizer against llama.cpp: every vector of tokenizer-vectors.json (three vocabularies),
// round trips, special tokens, streaming detokenization and unsupported vocabularies.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Metadata, parseGgufHeader } from '../../src/model/gguf.js';
import { Tokenizer } from '../../src/model/tokenizer.js';
import { StreamingDecoder } from '../../src/model/detokenizer.js';
import { splitWords, findBpePreTokenizer } from '../../src/model/tokenizer-bpe.js';
import { modelPath, sharedPath } from '../helpers/shared.js';
import { writeGguf, type MetaValue } from '../helpers/gguf-writer.js';

interface Vector {
  text: string;
  tokens: number[];
}

const VECTORS = JSON.parse(readFileSync(sharedPath('goldens', 'tokenizer-vectors.json'), 'utf8')) as {
  models: Record<string, Vector[]>;
};

const cache = new Map<string, Tokenizer>();
function tokenizerOf(file: string): Tokenizer {
  let t = cache.get(file);
  if (!t) {
    const bytes = new Uint8Array(readFileSync(modelPath(file)));
    const header = parseGgufHeader(bytes, file, bytes.byteLength);
    t = Tokenizer.fromMetadata(new Metadata(header.metadata, file));
    cache.set(file, t);
  }
  return t;
}

const SPM = 'llama-2-tiny-random.gguf';
const BPE = 'wg-llama3-bpe-q8_0.gguf';
const TOLSTOY = 'wg-tolstoy-q8_0.gguf';

describe('tokenizer vectors (llama.cpp, no BOS, special tokens not parsed)', () => {
  it('covers the three vocabularies', () => {
    expect(Object.keys(VECTORS.models).sort()).toEqual([SPM, BPE, TOLSTOY].sort());
  });

  for (const [file, vectors] of Object.entries(VECTORS.models)) {
    describe(file, () => {
      it.each(vectors.map((v, i) => [i, v] as const))('vector %i', (_, v) => {
        expect(tokenizerOf(file).encode(v.text, { addBos: false })).toEqual(v.tokens);
      });
    });
  }
});

describe('round trip decode(encode(x))', () => {
  // llama.cpp's clean_up_tokenization_spaces (on for the Llama 3 vocabulary) drops the space
  // before 's, so this text does not come back as it went in: the same happens in llama.cpp.
  const CLEANED: Record<string, Record<string, string>> = {
    [BPE]: { '"quoted" \'single\' `back`': '"quoted"\'single\' `back`' },
  };

  for (const [file, vectors] of Object.entries(VECTORS.models)) {
    it(`${file}: every vector comes back (except llama.cpp's space clean-up)`, () => {
      const tok = tokenizerOf(file);
      for (const v of vectors) {
        const expected = CLEANED[file]?.[v.text] ?? v.text;
        expect(tok.decode(tok.encode(v.text, { addBos: false })), JSON.stringify(v.text)).toBe(expected);
      }
    });
  }

  it('SentencePiece: the prefix space is taken off the first token, but stays after BOS (as llama.cpp)', () => {
    const tok = tokenizerOf(SPM);
    expect(tok.decode(tok.encode('Hello world', { addBos: false }))).toBe('Hello world');
    expect(tok.decode(tok.encode('Hello world'))).toBe(' Hello world');
    expect(tok.decode(tok.encode('Hello world'), { special: true })).toBe('<s> Hello world');
    expect(tok.decode(tok.encode('Hello world'), { removeSpecial: true })).toBe(' Hello world');
  });

  it("llama3: clean-up drops spaces before punctuation, around a lone apostrophe and before 's 're (not 'll)", () => {
    const tok = tokenizerOf(BPE);
    const ids = tok.encode("a , b . c ' d it 's he 'll they 're", { addBos: false });
    expect(tok.decode(ids)).toBe("a, b. c'd it's he 'll they're");
  });
});

describe('special tokens', () => {
  it('SentencePiece ids and flags come from the file', () => {
    const tok = tokenizerOf(SPM);
    expect([tok.kind, tok.vocabSize, tok.bosId, tok.eosId, tok.unknownId, tok.addBos]).toEqual(['spm', 32000, 1, 2, 0, true]);
    expect(tok.eotIds).toEqual([2]);
    expect(tokenizerOf(TOLSTOY).vocabSize).toBe(2048);
  });

  it('llama3 ends generation on <|eot_id|>, <|eom_id|> and <|end_of_text|>', () => {
    const tok = tokenizerOf(BPE);
    expect([tok.kind, tok.vocabSize, tok.bosId, tok.eosId, tok.addBos]).toEqual(['bpe', 128256, 128000, 128009, true]);
    expect(tok.eotIds).toEqual([128001, 128008, 128009]);
    expect(tok.isEog(128009) && tok.isEog(128001) && !tok.isEog(128006)).toBe(true);
    expect([tok.bosText, tok.eosText]).toEqual(['<|begin_of_text|>', '<|eot_id|>']);
  });

  it('control tokens are parsed only when asked', () => {
    const tok = tokenizerOf(BPE);
    expect(tok.encode('<|eot_id|>hi', { addBos: false, parseSpecial: true })).toEqual([128009, 6151]);
    expect(tok.encode('<|eot_id|>hi', { addBos: false })).not.toContain(128009);
  });

  it('SentencePiece puts a space before text that follows a special token', () => {
    const tok = tokenizerOf(SPM);
    expect(tok.encode('<s>Hi</s>Hi', { addBos: false, parseSpecial: true })).toEqual([
      1, ...tok.encode('Hi', { addBos: false }), 2, ...tok.encode('Hi', { addBos: false }),
    ]);
  });

  it('the empty text is just BOS when BOS is added', () => {
    expect(tokenizerOf(SPM).encode('')).toEqual([1]);
    expect(tokenizerOf(SPM).encode('', { addBos: false })).toEqual([]);
    expect(tokenizerOf(BPE).encode('')).toEqual([128000]);
  });

  it('control tokens print only when special', () => {
    const tok = tokenizerOf(BPE);
    expect(tok.tokenToPiece(128009)).toBe('<|eot_id|>');
    expect(tok.tokenToPiece(128009, false)).toBe('');
    expect(tok.decode([9906, 128009])).toBe('Hello');
    expect(tok.decode([9906, 128009], { special: true })).toBe('Hello<|eot_id|>');
    expect(() => tok.tokenToPiece(128256)).toThrow(/outside the vocabulary/);
  });
});

describe('llama3 pre-tokenizer regex', () => {
  const split = (text: string) => splitWords(text, findBpePreTokenizer('llama-bpe')!.regex);

  it('matches contractions in any case, as (?i:...) does', () => {
    expect(split("I'M HE'S we'Re you'VE it'LL she'D don'T")).toEqual([
      'I', "'M", ' HE', "'S", ' we', "'Re", ' you', "'VE", ' it', "'LL", ' she', "'D", ' don', "'T",
    ]);
  });

  it('keeps digits in threes, newlines with their spaces, and letters of every script', () => {
    expect(split('1234567 x')).toEqual(['123', '456', '7', ' x']);
    expect(split('a  \n\n  b')).toEqual(['a', '  \n\n', ' ', ' b']);
    expect(split('東京 Привет')).toEqual(['東京', ' Привет']);
  });

  it('treats U+0085 as white space and U+FEFF as not (llama.cpp tables, not JS \\s)', () => {
    expect(split('a\u0085\u0085b')).toEqual(['a', '\u0085', '\u0085b']);
    expect(split('a \uFEFF')).toEqual(['a', ' \uFEFF']);
  });
});

describe('StreamingDecoder', () => {
  function stream(tok: Tokenizer, ids: number[]): string[] {
    const decoder = new StreamingDecoder(tok);
    return [...ids.map((id) => decoder.push(id)), decoder.flush()];
  }

  it('never emits half of an emoji split across SentencePiece byte tokens', () => {
    const tok = tokenizerOf(SPM);
    const ids = tok.encode('😀😀', { addBos: false });
    expect(ids).toEqual([29871, 243, 162, 155, 131, 243, 162, 155, 131]);
    expect(stream(tok, ids)).toEqual([' ', '', '', '', '😀', '', '', '', '😀', '']);
  });

  it('never emits half of a Hangul syllable', () => {
    const tok = tokenizerOf(SPM);
    const ids = tok.encode('한국어 텍스트', { addBos: false });
    const pieces = stream(tok, ids);
    expect(pieces.join('')).toBe(' 한국어 텍스트');
    for (const p of pieces) expect(p).not.toContain('\uFFFD');
    expect(pieces).toContain('텍');
  });

  it('joins byte-level BPE pieces of CJK and emoji', () => {
    const tok = tokenizerOf(BPE);
    for (const text of ['東京タワー 🚀', '😀😀😀😀😀', 'ŉ ǅ ẞ ﬁ']) {
      const pieces = stream(tok, tok.encode(text, { addBos: false }));
      expect(pieces.join('')).toBe(text);
      for (const p of pieces) expect(p).not.toContain('\uFFFD');
    }
  });

  it('renders control tokens only when special, and flushes an unfinished character as U+FFFD', () => {
    const tok = tokenizerOf(BPE);
    expect(stream(tok, [9906, 128009]).join('')).toBe('Hello');
    const decoder = new StreamingDecoder(tok, { special: true });
    expect(decoder.push(128009)).toBe('<|eot_id|>');
    const spm = new StreamingDecoder(tokenizerOf(SPM));
    expect(spm.push(243)).toBe('');
    expect(spm.flush()).toBe('\uFFFD');
    expect(spm.text).toBe('\uFFFD');
  });
});

describe('vocabulary text as stored in the file', () => {
  // Llama 2's token 30143 is U+FEFF: gguf.ts must not drop it as a byte-order mark.
  it('U+FEFF is its own token, 30143, as in llama.cpp', () => {
    const t = tokenizerOf(SPM);
    expect(t.tokenToPiece(30143)).toBe('\uFEFF');
    expect(t.encode('a\uFEFFb', { addBos: false })).toContain(30143);
  });
});

describe('unsupported vocabularies', () => {
  function metadataOf(entries: Record<string, MetaValue>): Metadata {
    const bytes = writeGguf(entries, []);
    return new Metadata(parseGgufHeader(bytes, 'test.gguf', bytes.byteLength).metadata, 'test.gguf');
  }
  const tokens: MetaValue = { type: 'array', itemType: 'string', value: ['a', 'b'] };

  it('an unknown tokenizer.ggml.model fails with an error naming it', () => {
    const meta = metadataOf({ 'tokenizer.ggml.model': { type: 'string', value: 'rwkv' }, 'tokenizer.ggml.tokens': tokens });
    expect(() => Tokenizer.fromMetadata(meta)).toThrow(/test\.gguf: unsupported tokenizer model 'rwkv'/);
  });

  it('an unknown BPE pre-tokenizer fails with an error naming it', () => {
    const meta = metadataOf({
      'tokenizer.ggml.model': { type: 'string', value: 'gpt2' },
      'tokenizer.ggml.pre': { type: 'string', value: 'martian' },
      'tokenizer.ggml.tokens': tokens,
      'tokenizer.ggml.merges': { type: 'array', itemType: 'string', value: ['a b'] },
    });
    expect(() => Tokenizer.fromMetadata(meta)).toThrow(/unsupported BPE pre-tokenizer 'martian'/);
  });

  it('a file without a vocabulary says so', () => {
    const meta = metadataOf({ 'tokenizer.ggml.model': { type: 'string', value: 'llama' } });
    expect(() => Tokenizer.fromMetadata(meta)).toThrow(/tokenizer\.ggml\.tokens is missing/);
  });
});

describe('long prompts', () => {
  // About 4k tokens of mixed text (prose, code, CJK, emoji, long runs).
  for (const file of [SPM, BPE, TOLSTOY]) {
    it(`${file}: a 4k-token prompt encodes to ids that decode back to it, in one pass or in steps`, async () => {
      const tok = tokenizerOf(file);
      const text = VECTORS.models[file].map((v) => v.text).join('\n');
      const unit = tok.encode(text, { addBos: false }).length;
      const prompt = text.repeat(Math.ceil(4096 / unit));
      const ids = tok.encode(prompt, { addBos: false });
      expect(ids.length).toBeGreaterThanOrEqual(4096);
      // llama.cpp's space clean-up (llama3) may change the decoded text, never the token count.
      if (file !== BPE) expect(tok.decode(ids)).toBe(prompt);
      expect(await tok.encodeAsync(prompt, { addBos: false })).toEqual(ids);
    });
  }
});
