// GGUF container format: header, metadata key/values and tensor directory.
// Spec: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md (version 2 and 3).

export enum GgmlType {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  BF16 = 30,
}

/** Elements per block and bytes per block of every type this parser can size. */
const TYPE_LAYOUT: Partial<Record<number, { blockElems: number; blockBytes: number }>> = {
  [GgmlType.F32]: { blockElems: 1, blockBytes: 4 },
  [GgmlType.F16]: { blockElems: 1, blockBytes: 2 },
  [GgmlType.BF16]: { blockElems: 1, blockBytes: 2 },
  [GgmlType.Q4_0]: { blockElems: 32, blockBytes: 18 },
  [GgmlType.Q4_1]: { blockElems: 32, blockBytes: 20 },
  [GgmlType.Q5_0]: { blockElems: 32, blockBytes: 22 },
  [GgmlType.Q5_1]: { blockElems: 32, blockBytes: 24 },
  [GgmlType.Q8_0]: { blockElems: 32, blockBytes: 34 },
  [GgmlType.Q8_1]: { blockElems: 32, blockBytes: 36 },
  [GgmlType.Q2_K]: { blockElems: 256, blockBytes: 84 },
  [GgmlType.Q3_K]: { blockElems: 256, blockBytes: 110 },
  [GgmlType.Q4_K]: { blockElems: 256, blockBytes: 144 },
  [GgmlType.Q5_K]: { blockElems: 256, blockBytes: 176 },
  [GgmlType.Q6_K]: { blockElems: 256, blockBytes: 210 },
  [GgmlType.Q8_K]: { blockElems: 256, blockBytes: 292 },
};

export function ggmlTypeName(type: number): string {
  return GgmlType[type] ?? `type#${type}`;
}

export type GgufValue = number | bigint | boolean | string | GgufValue[];

export interface TensorInfo {
  name: string;
  /** ggml order: dims[0] is the innermost (contiguous) dimension. */
  dims: number[];
  type: GgmlType;
  /** Byte offset from the start of the file. */
  offset: number;
  byteLength: number;
}

export interface GgufHeader {
  version: number;
  metadata: Map<string, GgufValue>;
  tensors: TensorInfo[];
  /** Byte offset where tensor data begins (aligned). */
  dataOffset: number;
  alignment: number;
}

/** Thrown by the parser when the bytes end before the header does; loaders read more and retry. */
export class NeedMoreBytes extends Error {
  constructor(readonly needed: number) {
    super(`GGUF header needs at least ${needed} bytes`);
  }
}

export class GgufError extends Error {
  constructor(message: string, readonly source = 'model') {
    super(`${source}: ${message}`);
    this.name = 'GgufError';
  }
}

/** The most elements a tensor may have: its byte offsets must stay exact in a JS number. */
const MAX_TENSOR_ELEMENTS = 2 ** 52;
/** ggml's GGML_MAX_NAME: tensor names are shorter than this. */
const MAX_TENSOR_NAME = 64;
/** ggml's GGML_MAX_DIMS. */
const MAX_DIMS = 4;
/**
 * Most bytes the header (metadata and tensor directory) may take. The largest vocabularies
 * (256k tokens with their merges) take about 20 MB; this bound keeps a corrupt length in a file
 * of unknown size (a download without Content-Length) from reading gigabytes before it fails.
 */
export const MAX_HEADER_BYTES = 256 * 2 ** 20;

export function tensorByteLength(type: number, dims: number[], name: string, source = 'model'): number {
  const layout = TYPE_LAYOUT[type];
  if (!layout) throw new GgufError(`tensor ${name} has unknown ggml type ${type}`, source);
  let elems = 1;
  for (const d of dims) {
    elems *= d;
    if (elems > MAX_TENSOR_ELEMENTS) throw new GgufError(`tensor ${name} has dimensions [${dims.join(', ')}]: too many elements`, source);
  }
  if (dims.length && dims[0] % layout.blockElems !== 0) {
    throw new GgufError(`tensor ${name} (${ggmlTypeName(type)}) row of ${dims[0]} is not a multiple of the block size ${layout.blockElems}`, source);
  }
  return (elems / layout.blockElems) * layout.blockBytes;
}

const VALUE_TYPES = ['u8', 'i8', 'u16', 'i16', 'u32', 'i32', 'f32', 'bool', 'string', 'array', 'u64', 'i64', 'f64'] as const;
type ValueTypeName = (typeof VALUE_TYPES)[number];
/** The fewest bytes one value of each type takes (a string: its u64 length). */
const MIN_VALUE_BYTES: Record<ValueTypeName, number> = {
  u8: 1, i8: 1, bool: 1, u16: 2, i16: 2, u32: 4, i32: 4, f32: 4, u64: 8, i64: 8, f64: 8, string: 8, array: 12,
};

class Cursor {
  pos = 0;
  private readonly view: DataView;
  private readonly decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
  /** Where the file ends: its size when known, else the header bound. */
  readonly end: number;
  constructor(private readonly bytes: Uint8Array, readonly source: string, readonly fileSize: number | undefined) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.end = Math.min(fileSize ?? Infinity, MAX_HEADER_BYTES);
  }
  /** Claims n bytes for `what`: past the end of the file it is an error, past the bytes at hand more are needed. */
  private need(n: number, what: string): number {
    const at = this.pos;
    if (at + n > this.end) throw this.pastEnd(what, at, n);
    if (at + n > this.bytes.byteLength) throw new NeedMoreBytes(at + n);
    this.pos += n;
    return at;
  }
  pastEnd(what: string, at: number, n: number): GgufError {
    if (this.fileSize !== undefined && at + n <= MAX_HEADER_BYTES) {
      return new GgufError(`${what} at byte ${at} needs ${n} bytes, but the file ends at byte ${this.fileSize} (the file is truncated or corrupt)`, this.source);
    }
    return new GgufError(`${what} at byte ${at} would make the header larger than ${MAX_HEADER_BYTES / 2 ** 20} MiB (corrupt header)`, this.source);
  }
  /** Bytes left before the end of the file (or the header bound). */
  get remaining(): number {
    return this.end - this.pos;
  }
  u8 = (what: string) => this.view.getUint8(this.need(1, what));
  i8 = (what: string) => this.view.getInt8(this.need(1, what));
  u16 = (what: string) => this.view.getUint16(this.need(2, what), true);
  i16 = (what: string) => this.view.getInt16(this.need(2, what), true);
  u32 = (what: string) => this.view.getUint32(this.need(4, what), true);
  i32 = (what: string) => this.view.getInt32(this.need(4, what), true);
  f32 = (what: string) => this.view.getFloat32(this.need(4, what), true);
  f64 = (what: string) => this.view.getFloat64(this.need(8, what), true);
  u64 = (what: string) => this.view.getBigUint64(this.need(8, what), true);
  i64 = (what: string) => this.view.getBigInt64(this.need(8, what), true);
  /**
   * A u64 count of items of at least `itemBytes` bytes each, checked against the bytes left in the
   * file before anything is read or allocated for them.
   */
  count(what: string, itemBytes: number): number {
    const at = this.pos;
    const v = this.u64(what);
    if (v * BigInt(itemBytes) > BigInt(this.remaining)) {
      const inFile = this.fileSize !== undefined && this.end === this.fileSize;
      const left = inFile ? `the ${this.remaining} bytes left in the file of ${this.fileSize} can hold` : `a header of at most ${MAX_HEADER_BYTES / 2 ** 20} MiB can hold`;
      throw new GgufError(`${what} at byte ${at} is ${v}, more than ${left} (the file is truncated or corrupt)`, this.source);
    }
    return Number(v);
  }
  /** A u64 size or offset that must fit a JS number exactly. */
  size(what: string): number {
    const at = this.pos;
    const v = this.u64(what);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new GgufError(`${what} at byte ${at} is ${v}, too large (corrupt header)`, this.source);
    return Number(v);
  }
  string(what: string): string {
    const len = this.count(`length of ${what}`, 1);
    const at = this.need(len, what);
    return this.decoder.decode(this.bytes.subarray(at, at + len));
  }
}

/** One metadata value; `index` is its place in the array `key` when it is an element of one. */
function readValue(c: Cursor, type: number, key: string, index?: number): GgufValue {
  const what = index === undefined ? `value of ${key}` : `${key}[${index}]`;
  switch (VALUE_TYPES[type]) {
    case 'u8': return c.u8(what);
    case 'i8': return c.i8(what);
    case 'u16': return c.u16(what);
    case 'i16': return c.i16(what);
    case 'u32': return c.u32(what);
    case 'i32': return c.i32(what);
    case 'f32': return c.f32(what);
    case 'f64': return c.f64(what);
    case 'bool': return c.u8(what) !== 0;
    case 'string': return c.string(what);
    case 'u64': return c.u64(what);
    case 'i64': return c.i64(what);
    case 'array': {
      if (index !== undefined) throw new GgufError(`metadata ${key} is an array of arrays, which GGUF does not allow`, c.source);
      const itemType = c.u32(`element type of ${key}`);
      const itemName = VALUE_TYPES[itemType];
      if (!itemName) throw new GgufError(`metadata ${key} is an array of unknown value type ${itemType}`, c.source);
      const n = c.count(`array length of ${key}`, MIN_VALUE_BYTES[itemName]);
      const out: GgufValue[] = new Array(n);
      for (let i = 0; i < n; i++) out[i] = readValue(c, itemType, key, i);
      return out;
    }
    default:
      throw new GgufError(`metadata ${key} has unknown value type ${type} at byte ${c.pos - 4}`, c.source);
  }
}

interface RawTensor {
  name: string;
  dims: number[];
  type: number;
  rel: number;
}

/**
 * Parses the header from the first bytes of a GGUF file. Throws NeedMoreBytes when `bytes`
 * ends inside the header, GgufError when the file is not GGUF or is inconsistent.
 * `fileSize`, when known, bounds every count and length before anything is read or allocated,
 * and rejects truncated files up front.
 */
export function parseGgufHeader(bytes: Uint8Array, source = 'model', fileSize?: number): GgufHeader {
  const c = new Cursor(bytes, source, fileSize);
  try {
    if (fileSize !== undefined && fileSize < 24) throw new GgufError(`file of ${fileSize} bytes is too small to be GGUF`, source);
    const magic = c.u32('magic');
    if (magic !== 0x46554747) throw new GgufError(`not a GGUF file (it starts with ${describeMagic(bytes)})`, source);
    const version = c.u32('version');
    if (version < 2 || version > 3) throw new GgufError(`unsupported GGUF version ${version} (supported: 2 and 3)`, source);
    // Each tensor entry takes at least 24 bytes (name length, dimension count, type, offset); each key/value 13.
    const tensorCount = c.count('tensor count', 24);
    const kvCount = c.count('metadata count', 13);
    const metadata = readMetadata(c, kvCount);
    const alignment = readAlignment(metadata, source);
    const raw: RawTensor[] = [];
    const names = new Set<string>();
    for (let i = 0; i < tensorCount; i++) {
      const t = readTensorInfo(c, i);
      if (names.has(t.name)) throw new GgufError(`tensor ${t.name} appears twice in the tensor directory`, source);
      names.add(t.name);
      raw.push(t);
    }
    const dataOffset = Math.ceil(c.pos / alignment) * alignment;
    const tensors = layOut(raw, dataOffset, alignment, source);
    if (fileSize !== undefined) checkBounds(tensors, fileSize, source);
    return { version, metadata, tensors, dataOffset, alignment };
  } catch (e) {
    if (e instanceof RangeError) throw new GgufError(`corrupt header (${e.message})`, source);
    throw e;
  }
}

function describeMagic(bytes: Uint8Array): string {
  const head = bytes.subarray(0, 16);
  const text = new TextDecoder('utf-8', { fatal: false }).decode(head);
  if (/^\s*<(!doctype|html|\?xml|head|body)/i.test(text)) return 'an HTML page, not model bytes';
  if (/^\s*[{[]/.test(text)) return 'JSON text, not model bytes';
  const hex = Array.from(bytes.subarray(0, 4), (b) => b.toString(16).padStart(2, '0')).join(' ');
  return `bytes ${hex}, not "GGUF"`;
}

function readMetadata(c: Cursor, kvCount: number): Map<string, GgufValue> {
  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < kvCount; i++) {
    const key = c.string(`metadata key ${i}`);
    if (metadata.has(key)) throw new GgufError(`metadata key ${key} appears twice`, c.source);
    metadata.set(key, readValue(c, c.u32(`value type of ${key}`), key));
  }
  return metadata;
}

function readAlignment(metadata: Map<string, GgufValue>, source: string): number {
  const value = metadata.get('general.alignment');
  if (value === undefined) return 32;
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0 || (value & (value - 1)) !== 0) {
    throw new GgufError(`metadata general.alignment is ${String(value)}; it must be a power of two`, source);
  }
  return value;
}

function readTensorInfo(c: Cursor, index: number): RawTensor {
  const name = c.string(`name of tensor ${index}`);
  if (name.length >= MAX_TENSOR_NAME) throw new GgufError(`tensor ${index} has a name of ${name.length} characters (at most ${MAX_TENSOR_NAME - 1}): ${JSON.stringify(name.slice(0, 64))}...`, c.source);
  const nDims = c.u32(`dimension count of tensor ${name}`);
  if (nDims > MAX_DIMS) throw new GgufError(`tensor ${name} has ${nDims} dimensions (at most ${MAX_DIMS})`, c.source);
  const dims: number[] = [];
  for (let d = 0; d < nDims; d++) dims.push(c.size(`dimension ${d} of tensor ${name}`));
  const type = c.u32(`type of tensor ${name}`);
  return { name, dims, type, rel: c.size(`offset of tensor ${name}`) };
}

/**
 * Places every tensor in the data section. As ggml's reader: each starts at an aligned offset,
 * right after the previous one (padded to the alignment), in directory order.
 */
function layOut(raw: RawTensor[], dataOffset: number, alignment: number, source: string): TensorInfo[] {
  let expected = 0;
  return raw.map((t): TensorInfo => {
    const byteLength = tensorByteLength(t.type, t.dims, t.name, source);
    if (t.rel !== expected) {
      throw new GgufError(`tensor ${t.name} has data offset ${t.rel}, expected ${expected} (tensors must follow each other, aligned to ${alignment} bytes)`, source);
    }
    expected += Math.ceil(byteLength / alignment) * alignment;
    return { name: t.name, dims: t.dims, type: t.type, offset: dataOffset + t.rel, byteLength };
  });
}
function checkBounds(tensors: TensorInfo[], fileSize: number, source: string): void {
  for (const t of tensors) {
    if (t.offset + t.byteLength > fileSize) {
      throw new GgufError(
        `file is truncated: tensor ${t.name} (${ggmlTypeName(t.type)}) spans bytes ${t.offset}..${t.offset + t.byteLength} but the file has ${fileSize}`,
        source,
      );
    }
  }
}

/** Typed accessors for metadata, with errors that name the key and what is wrong with it. */
export class Metadata {
  constructor(readonly map: Map<string, GgufValue>, readonly source = 'model') {}
  has(key: string): boolean {
    return this.map.has(key);
  }
  number(key: string, fallback?: number): number {
    const v = this.map.get(key);
    if (v === undefined) {
      if (fallback !== undefined) return fallback;
      throw new GgufError(`metadata ${key} is missing`, this.source);
    }
    if (typeof v === 'bigint') return Number(v);
    if (typeof v !== 'number') throw new GgufError(`metadata ${key} must be a number, but it is ${describeValue(v)}`, this.source);
    return v;
  }
  /** A whole number in min..max (a count or a size). */
  integer(key: string, min: number, max: number, fallback?: number): number {
    const v = this.number(key, fallback);
    if (!Number.isInteger(v) || v < min || v > max) {
      throw new GgufError(`metadata ${key} is ${v}; it must be a whole number from ${min} to ${max}`, this.source);
    }
    return v;
  }
  /** A finite number above zero (an epsilon, a frequency base). */
  positive(key: string, fallback?: number): number {
    const v = this.number(key, fallback);
    if (!Number.isFinite(v) || v <= 0) throw new GgufError(`metadata ${key} is ${v}; it must be a finite number above 0`, this.source);
    return v;
  }
  string(key: string, fallback?: string): string {
    const v = this.map.get(key);
    if (v === undefined) {
      if (fallback !== undefined) return fallback;
      throw new GgufError(`metadata ${key} is missing`, this.source);
    }
    if (typeof v !== 'string') throw new GgufError(`metadata ${key} must be a string, but it is ${describeValue(v)}`, this.source);
    return v;
  }
  bool(key: string, fallback: boolean): boolean {
    const v = this.map.get(key);
    if (v === undefined) return fallback;
    if (typeof v !== 'boolean') throw new GgufError(`metadata ${key} must be a boolean, but it is ${describeValue(v)}`, this.source);
    return v;
  }
  /** An array of strings, or undefined when the key is absent. */
  strings(key: string): string[] | undefined {
    return this.typedArray(key, 'strings', (x): x is string => typeof x === 'string');
  }
  /** An array of numbers (any numeric GGUF type), or undefined when the key is absent. */
  numbers(key: string): number[] | undefined {
    const values = this.typedArray(key, 'numbers', (x): x is number | bigint => typeof x === 'number' || typeof x === 'bigint');
    return values?.map(Number);
  }
  private typedArray<T extends GgufValue>(key: string, kind: string, is: (x: GgufValue) => x is T): T[] | undefined {
    const v = this.map.get(key);
    if (v === undefined) return undefined;
    if (!Array.isArray(v)) throw new GgufError(`metadata ${key} must be an array of ${kind}, but it is ${describeValue(v)}`, this.source);
    const bad = v.findIndex((x) => !is(x));
    if (bad >= 0) throw new GgufError(`metadata ${key} must be an array of ${kind}, but element ${bad} is ${describeValue(v[bad])}`, this.source);
    return v as T[];
  }
}

/** A short description of a metadata value for errors (never the whole of a long value). */
function describeValue(v: GgufValue): string {
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (typeof v === 'string') return `the string "${v.length > 40 ? v.slice(0, 40) + '...' : v}"`;
  return `${typeof v === 'bigint' ? 'the integer' : `the ${typeof v}`} ${String(v)}`;
}
