// Corrupt model files: seeded mutants of a shared model, each of which must either load (header,
// config, tokenizer, every tensor's bytes) or be refused with an error that names the file and
// says what is wrong in words, never JavaScript internals; none may hang. The GPU half of loading
// is covered by test/gpu/model-load.test.ts.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { readModelConfig, type ModelConfig } from '../../src/model/config.js';
import { GgmlType, GgufError, Metadata } from '../../src/model/gguf.js';
import { readGgufHeader, streamTensors } from '../../src/model/loader.js';
import { ModelSourceError, openModelSource, type ModelSource } from '../../src/model/source.js';
import { Tokenizer, TokenizerError } from '../../src/model/tokenizer.js';
import { ggufSpec, writeGguf, writeGgufWithLayout, type GgufSpec, type MetaValue, type TensorSpec } from '../helpers/gguf-writer.js';
import { rng } from '../helpers/random.js';
import { modelPath } from '../helpers/shared.js';

const ORIGINAL = new Uint8Array(readFileSync(modelPath('wg-tolstoy-q8_0.gguf')));
const CASE_TIMEOUT_MS = 5000;

/** What Model.load does before the GPU: header, config, tokenizer, every tensor read in full. */
async function loadOnCpu(source: ModelSource): Promise<{ config: ModelConfig; tokens: number[] }> {
  const reader = await openModelSource(source);
  try {
    const header = await readGgufHeader(reader);
    const config = readModelConfig(header, reader.name);
    const tokenizer = Tokenizer.fromMetadata(new Metadata(header.metadata, reader.name));
    let bytes = 0;
    await streamTensors(reader, header, (info, data) => {
      expect(data.byteLength).toBe(info.byteLength);
      bytes += data.byteLength;
    });
    expect(bytes).toBe(header.tensors.reduce((n, t) => n + t.byteLength, 0));
    return { config, tokens: tokenizer.encode('Prince Andrew looked at') };
  } finally {
    await reader.close();
  }
}

const INTERNALS = /is not a function|is not iterable|Cannot read prop|undefined|NaN|Invalid typed array|Invalid array length|Maximum call stack|out of memory|Offset is outside|RangeError|TypeError/i;

/** Loads `bytes` as a file named `name`; resolves to 'loaded' or the error message, which must be clear. */
async function outcome(bytes: Uint8Array, name: string): Promise<string> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hung = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${name}: hung`)), CASE_TIMEOUT_MS)));
  try {
    await Promise.race([loadOnCpu(new File([bytes.slice()], name)), hung]);
    return 'loaded';
  } catch (e) {
    const error = e as Error;
    const known = error instanceof GgufError || error instanceof TokenizerError || error instanceof ModelSourceError;
    if (!known || !error.message.startsWith(`${name}: `) || INTERNALS.test(error.message) || error.message.length > 400) {
      throw new Error(`${name}: unclear refusal: ${error.name}: ${error.message}`);
    }
    return error.message;
  } finally {
    clearTimeout(timer);
  }
}

function spec(): GgufSpec {
  return ggufSpec(ORIGINAL);
}

function setMeta(s: GgufSpec, key: string, value: MetaValue | undefined): GgufSpec {
  const at = s.metadata.findIndex(([k]) => k === key);
  if (value === undefined) s.metadata.splice(at, 1);
  else if (at < 0) s.metadata.push([key, value]);
  else s.metadata[at] = [key, value];
  return s;
}

function tensor(s: GgufSpec, name: string): TensorSpec {
  const t = s.tensors.find((x) => x.name === name);
  if (!t) throw new Error(`no tensor ${name}`);
  return t;
}

function indexOfText(bytes: Uint8Array, text: string): number {
  const needle = new TextEncoder().encode(text);
  for (let i = 0; i + needle.length <= bytes.length; i++) {
    if (needle.every((b, j) => bytes[i + j] === b)) return i;
  }
  throw new Error(`no "${text}" in the file`);
}

const metaArray = (s: GgufSpec, key: string) => (s.metadata.find(([k]) => k === key)![1] as Extract<MetaValue, { type: 'array' }>).value;

describe('the mutant suite starts from a model that loads', () => {
  it('loads the original and its rewrite alike', async () => {
    expect(await outcome(ORIGINAL, 'original.gguf')).toBe('loaded');
    const rewritten = writeGguf(spec().metadata, spec().tensors);
    expect(await outcome(rewritten, 'rewritten.gguf')).toBe('loaded');
    const a = await loadOnCpu(new File([ORIGINAL.slice()], 'a.gguf'));
    const b = await loadOnCpu(new File([rewritten.slice()], 'b.gguf'));
    expect(b).toEqual(a);
  });
});

/** Each class of corruption, made on purpose, and the words its refusal must have. */
const CLASSES: [string, () => Uint8Array, RegExp][] = [
  ['duplicate metadata key', () => {
    const s = spec();
    s.metadata.push(['llama.block_count', { type: 'u32', value: 4 }]);
    return writeGguf(s.metadata, s.tensors);
  }, /metadata key llama\.block_count appears twice/],
  ['duplicate tensor name', () => {
    const s = spec();
    const dup = tensor(s, 'blk.0.attn_norm.weight');
    s.tensors.push({ ...dup });
    return writeGguf(s.metadata, s.tensors);
  }, /tensor blk\.0\.attn_norm\.weight appears twice/],
  ['alignment not a power of two', () => {
    const s = spec();
    s.metadata.push(['general.alignment', { type: 'u32', value: 48 }]);
    return writeGguf(s.metadata, s.tensors, 48);
  }, /general\.alignment is 48; it must be a power of two/],
  ['alignment zero', () => {
    const s = spec();
    s.metadata.push(['general.alignment', { type: 'u32', value: 0 }]);
    return writeGguf(s.metadata, s.tensors);
  }, /general\.alignment is 0; it must be a power of two/],
  ['alignment of the wrong type', () => {
    const s = spec();
    s.metadata.push(['general.alignment', { type: 'string', value: '32' }]);
    return writeGguf(s.metadata, s.tensors);
  }, /general\.alignment is 32; it must be a power of two/],
  ['vocabulary of numbers', () => {
    const s = spec();
    const n = metaArray(s, 'tokenizer.ggml.tokens').length;
    setMeta(s, 'tokenizer.ggml.tokens', { type: 'array', itemType: 'u32', value: Array.from({ length: n }, (_, i) => i) });
    return writeGguf(s.metadata, s.tensors);
  }, /metadata tokenizer\.ggml\.tokens must be an array of strings, but element 0 is the number 0/],
  ['scores of strings', () => {
    const s = spec();
    const n = metaArray(s, 'tokenizer.ggml.tokens').length;
    setMeta(s, 'tokenizer.ggml.scores', { type: 'array', itemType: 'string', value: Array.from({ length: n }, () => 'x') });
    return writeGguf(s.metadata, s.tensors);
  }, /tokenizer\.ggml\.scores must be an array of numbers/],
  ['token types too few', () => {
    const s = spec();
    metaArray(s, 'tokenizer.ggml.token_type').pop();
    return writeGguf(s.metadata, s.tensors);
  }, /tokenizer\.ggml\.token_type has 2047 entries for 2048 tokens/],
  ['block count a string', () => writeGguf(setMeta(spec(), 'llama.block_count', { type: 'string', value: '4' }).metadata, spec().tensors),
    /metadata llama\.block_count must be a number, but it is the string "4"/],
  ['zero layers', () => writeGguf(setMeta(spec(), 'llama.block_count', { type: 'u32', value: 0 }).metadata, spec().tensors),
    /llama\.block_count is 0; it must be a whole number from 1/],
  ['fewer layers than tensors', () => writeGguf(setMeta(spec(), 'llama.block_count', { type: 'u32', value: 3 }).metadata, spec().tensors),
    /tensor blk\.3\.\w+\.weight is for layer 3, but the model has 3 layers \(llama\.block_count\)/],
  ['more layers than tensors', () => writeGguf(setMeta(spec(), 'llama.block_count', { type: 'u32', value: 5 }).metadata, spec().tensors),
    /tensor blk\.4\.attn_norm\.weight is missing/],
  ['a layer tensor missing', () => {
    const s = spec();
    s.tensors = s.tensors.filter((t) => t.name !== 'blk.2.ffn_up.weight');
    return writeGguf(s.metadata, s.tensors);
  }, /tensor blk\.2\.ffn_up\.weight is missing/],
  ['a tensor of another variant (a bias)', () => {
    const s = spec();
    s.tensors.push({ name: 'blk.0.attn_q.bias', dims: [128], type: GgmlType.F32, data: new Uint8Array(512) });
    return writeGguf(s.metadata, s.tensors);
  }, /tensor blk\.0\.attn_q\.bias is not part of the llama model/],
  ['vocabulary smaller than the embedding', () => {
    const s = spec();
    for (const key of ['tokenizer.ggml.tokens', 'tokenizer.ggml.scores', 'tokenizer.ggml.token_type']) metaArray(s, key).pop();
    return writeGguf(s.metadata, s.tensors);
  }, /the vocabulary has 2047 tokens \(tokenizer\.ggml\.tokens\) but token_embd\.weight has 2048 rows/],
  ['vocabulary larger than the embedding', () => {
    const s = spec();
    metaArray(s, 'tokenizer.ggml.tokens').push('extra-token');
    metaArray(s, 'tokenizer.ggml.scores').push(0);
    metaArray(s, 'tokenizer.ggml.token_type').push(1);
    return writeGguf(s.metadata, s.tensors);
  }, /the vocabulary has 2049 tokens/],
  ['vocab_size disagreeing', () => writeGguf(setMeta(spec(), 'llama.vocab_size', { type: 'u32', value: 32000 }).metadata, spec().tensors),
    /llama\.vocab_size is 32000 but token_embd\.weight has 2048 rows/],
  ['rope dimension not the head size', () => writeGguf(setMeta(spec(), 'llama.rope.dimension_count', { type: 'u32', value: 16 }).metadata, spec().tensors),
    /llama\.rope\.dimension_count 16 differs from the head size 32/],
  ['heads not dividing the embedding', () => writeGguf(setMeta(spec(), 'llama.attention.head_count', { type: 'u32', value: 3 }).metadata, spec().tensors),
    /llama\.embedding_length 128 is not a multiple of llama\.attention\.head_count 3/],
  ['kv heads not dividing the heads', () => writeGguf(setMeta(spec(), 'llama.attention.head_count_kv', { type: 'u32', value: 3 }).metadata, spec().tensors),
    /head_count 4 is not a multiple of llama\.attention\.head_count_kv 3/],
  ['negative epsilon', () => writeGguf(setMeta(spec(), 'llama.attention.layer_norm_rms_epsilon', { type: 'f32', value: -1 }).metadata, spec().tensors),
    /layer_norm_rms_epsilon is -1; it must be a finite number above 0/],
  ['a tensor of the wrong shape', () => {
    const s = spec();
    const t = tensor(s, 'blk.1.attn_norm.weight');
    t.dims = [64, 2];
    return writeGguf(s.metadata, s.tensors);
  }, /tensor blk\.1\.attn_norm\.weight has shape \[64, 2\], expected \[128\]/],
  ['tensor data out of order', () => {
    const s = spec();
    const { bytes } = writeGgufWithLayout(s.metadata, s.tensors, { offsets: s.tensors.map((_, i) => (i === 1 ? 0 : undefined)) as number[] });
    return bytes;
  }, /tensor \S+ has data offset 0, expected \d+ \(tensors must follow each other/],
  ['an unknown tensor type', () => {
    const { bytes, layout } = writeGgufWithLayout(spec().metadata, spec().tensors);
    new DataView(bytes.buffer).setUint32(layout.types.at(-1)!, 99, true);
    return bytes;
  }, /tensor \S+ has unknown ggml type 99/],
  ['too many dimensions', () => {
    const { bytes, layout } = writeGgufWithLayout(spec().metadata, spec().tensors);
    new DataView(bytes.buffer).setUint32(layout.types.at(-2)!, 7, true);
    return bytes;
  }, /has 7 dimensions \(at most 4\)/],
  ['an array of arrays', () => {
    const bytes = writeGguf(spec().metadata, spec().tensors);
    const key = indexOfText(bytes, 'tokenizer.ggml.tokens');
    new DataView(bytes.buffer).setUint32(key + 21 + 4, 9, true); // after the key: the value type (array), then the element type
    return bytes;
  }, /tokenizer\.ggml\.tokens is an array of arrays/],
  ['a huge string length', () => {
    const { bytes, layout } = writeGgufWithLayout(spec().metadata, spec().tensors);
    new DataView(bytes.buffer).setBigUint64(layout.lengths[2], 2n ** 40n, true); // the first key's length
    return bytes;
  }, /length of metadata key 0 at byte 24 is 1099511627776, more than the \d+ bytes left in the file of \d+ can hold/],
  ['a huge array length', () => {
    const bytes = writeGguf(spec().metadata, spec().tensors);
    const key = indexOfText(bytes, 'tokenizer.ggml.scores');
    new DataView(bytes.buffer).setBigUint64(key + 21 + 8, 2n ** 62n, true); // after the key: value type, element type, length
    return bytes;
  }, /array length of tokenizer\.ggml\.scores at byte \d+ is 4611686018427387904, more than the \d+ bytes left in the file of \d+ can hold \(the file is truncated or corrupt\)/],
  ['a huge tensor count', () => {
    const bytes = ORIGINAL.slice();
    new DataView(bytes.buffer).setBigUint64(8, 2n ** 63n, true);
    return bytes;
  }, /tensor count at byte 8 is 9223372036854775808, more than/],
  ['a huge metadata count', () => {
    const bytes = ORIGINAL.slice();
    new DataView(bytes.buffer).setBigUint64(16, 123456789n, true);
    return bytes;
  }, /metadata count at byte 16 is 123456789, more than/],
  ['a huge dimension', () => {
    const { bytes, layout } = writeGgufWithLayout(spec().metadata, spec().tensors);
    new DataView(bytes.buffer).setBigUint64(layout.dims[0], 2n ** 50n, true);
    return bytes;
  }, /too many elements|file is truncated: tensor/],
  ['an HTML page', () => new TextEncoder().encode('<!DOCTYPE html><html><head><title>Not found</title></head><body>404</body></html>'),
    /not a GGUF file \(it starts with an HTML page, not model bytes\)/],
  ['GGUF version 1', () => {
    const bytes = ORIGINAL.slice();
    new DataView(bytes.buffer).setUint32(4, 1, true);
    return bytes;
  }, /unsupported GGUF version 1/],
  ['an empty file', () => new Uint8Array(0), /file of 0 bytes is too small to be GGUF/],
  ['cut inside the header', () => ORIGINAL.slice(0, 5000), /at byte \d+ is 2048, more than the \d+ bytes left in the file of 5000 can hold \(the file is truncated or corrupt\)/],
  ['cut inside the tensors', () => ORIGINAL.slice(0, ORIGINAL.byteLength - 5000), /file is truncated: tensor \S+ \(\w+\) spans bytes/],
];

describe('every class of corrupt model file is refused by name', () => {
  it.each(CLASSES)('%s', async (what, make, words) => {
    const name = `${what.replaceAll(' ', '-')}.gguf`;
    const result = await outcome(make(), name);
    expect(result).toMatch(words);
  });

  it('clamps an absurd context length to what a model can be served with', async () => {
    const bytes = writeGguf(setMeta(spec(), 'llama.context_length', { type: 'u32', value: 2 ** 32 - 1 }).metadata, spec().tensors);
    const { config } = await loadOnCpu(new File([bytes.slice()], 'ctx.gguf'));
    expect(config.contextLength).toBe(2 ** 24);
  });
});

describe('a corrupt length reads no more than the header', () => {
  /** A stream of unknown size (no Content-Length) that counts the bytes it gave out. */
  function countingResponse(bytes: Uint8Array): { response: Response; pulled: () => number } {
    let at = 0;
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (at >= bytes.byteLength) return controller.close();
        const chunk = bytes.subarray(at, at + 65536);
        at += chunk.byteLength;
        controller.enqueue(chunk);
      },
    });
    return { response: new Response(stream), pulled: () => at };
  }

  it('fails at the header bound on a stream of unknown size, before reading the file', async () => {
    const s = spec();
    // 64 MiB of tensor data after a small header.
    s.tensors.push(...Array.from({ length: 16 }, (_, i) => ({ name: `pad.${i}`, dims: [1 << 20], type: GgmlType.F32, data: new Uint8Array(4 << 20) })));
    const { bytes, layout } = writeGgufWithLayout(s.metadata, s.tensors);
    new DataView(bytes.buffer).setBigUint64(layout.lengths.at(-1)!, 2n ** 40n, true); // the last tensor name's length
    const { response, pulled } = countingResponse(bytes);
    const reader = await openModelSource(response);
    await expect(readGgufHeader(reader)).rejects.toThrow(/name of tensor 53 at byte \d+ would make the header larger than 256 MiB|length of name of tensor 53 at byte \d+ is 1099511627776, more than a header of at most 256 MiB can hold/);
    expect(pulled()).toBeLessThan(1 << 20);
    await reader.close();
  });
});

/** Seeded random corruption: each mutant loads or is refused clearly, and none hangs. */
describe('random mutants', () => {
  const { bytes: base, layout } = writeGgufWithLayout(spec().metadata, spec().tensors);
  const dataEnd = base.byteLength - 0; // every tensor is followed by at most alignment - 1 bytes of padding
  const lastTensorEnd = (() => {
    const s = spec();
    const last = s.tensors.at(-1)!;
    return dataEnd - (Math.ceil(last.data.byteLength / 32) * 32 - last.data.byteLength);
  })();

  it('byte flips in the header: loaded or refused clearly', async () => {
    const r = rng(12);
    const tally = { loaded: 0, refused: 0 };
    for (let i = 0; i < 300; i++) {
      const bytes = base.slice();
      const flips = 1 + Math.floor(r() * 4);
      for (let f = 0; f < flips; f++) bytes[Math.floor(r() * layout.dataOffset)] ^= 1 << Math.floor(r() * 8);
      tally[(await outcome(bytes, `flip-${i}.gguf`)) === 'loaded' ? 'loaded' : 'refused']++;
    }
    expect(tally.refused).toBeGreaterThan(0);
  });

  it('truncations at random offsets are refused unless only trailing padding was cut', async () => {
    const r = rng(34);
    for (let i = 0; i < 150; i++) {
      const cut = Math.floor(r() * base.byteLength);
      const result = await outcome(base.slice(0, cut), `cut-${cut}.gguf`);
      if (cut < lastTensorEnd) expect(result, `cut at ${cut}`).not.toBe('loaded');
    }
  });

  it('counts, lengths, dimensions, offsets and types set to random or extreme values', async () => {
    const r = rng(56);
    const fields = [
      ...layout.lengths.map((at) => ({ at, bytes: 8 })),
      ...layout.dims.map((at) => ({ at, bytes: 8 })),
      ...layout.offsets.map((at) => ({ at, bytes: 8 })),
      ...layout.types.map((at) => ({ at, bytes: 4 })),
    ];
    const extremes = [0n, 1n, 2n ** 31n, 2n ** 32n - 1n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n];
    for (let i = 0; i < 300; i++) {
      const field = fields[Math.floor(r() * fields.length)];
      const bytes = base.slice();
      const view = new DataView(bytes.buffer);
      const value = r() < 0.5 ? extremes[Math.floor(r() * extremes.length)] : BigInt(Math.floor(r() * 2 ** 32));
      if (field.bytes === 8) view.setBigUint64(field.at, value, true);
      else view.setUint32(field.at, Number(value & 0xffffffffn), true);
      await outcome(bytes, `field-${i}-at-${field.at}.gguf`);
    }
  });
});
