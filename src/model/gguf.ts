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

export function tensorByteLength(type: number, dims: number[], name: string, source = 'model'): number {
  const layout = TYPE_LAYOUT[type];
  if (!layout) throw new GgufError(`tensor ${name} has unknown ggml type ${type}`, source);
  const elems = dims.reduce((a, b) => a * b, 1);
  if (dims[0] % layout.blockElems !== 0) {
    throw new GgufError(`tensor ${name} (${ggmlTypeName(type)}) row of ${dims[0]} is not a multiple of the block size ${layout.blockElems}`, source);
  }
  return (elems / layout.blockElems) * layout.blockBytes;
}

const VALUE_TYPES = ['u8', 'i8', 'u16', 'i16', 'u32', 'i32', 'f32', 'bool', 'string', 'array', 'u64', 'i64', 'f64'] as const;

class Cursor {
  pos = 0;
  private readonly view: DataView;
  private readonly decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });
  constructor(private readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }
  private need(n: number): number {
    const at = this.pos;
    if (at + n > this.bytes.byteLength) throw new NeedMoreBytes(at + n);
    this.pos += n;
    return at;
  }
  u8 = () => this.view.getUint8(this.need(1));
  i8 = () => this.view.getInt8(this.need(1));
  u16 = () => this.view.getUint16(this.need(2), true);
  i16 = () => this.view.getInt16(this.need(2), true);
  u32 = () => this.view.getUint32(this.need(4), true);
  i32 = () => this.view.getInt32(this.need(4), true);
  f32 = () => this.view.getFloat32(this.need(4), true);
  f64 = () => this.view.getFloat64(this.need(8), true);
  u64 = () => this.view.getBigUint64(this.need(8), true);
  i64 = () => this.view.getBigInt64(this.need(8), true);
  /** A u64 that must fit a JS number (counts, sizes, offsets). */
  size(what: string): number {
    const v = this.u64();
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new GgufError(`${what} ${v} is too large`);
    return Number(v);
  }
  string(): string {
    const len = this.size('string length');
    const at = this.need(len);
    return this.decoder.decode(this.bytes.subarray(at, at + len));
  }
}

function readValue(c: Cursor, type: number, key: string): GgufValue {
  switch (VALUE_TYPES[type]) {
    case 'u8': return c.u8();
    case 'i8': return c.i8();
    case 'u16': return c.u16();
    case 'i16': return c.i16();
    case 'u32': return c.u32();
    case 'i32': return c.i32();
    case 'f32': return c.f32();
    case 'f64': return c.f64();
    case 'bool': return c.u8() !== 0;
    case 'string': return c.string();
    case 'u64': return c.u64();
    case 'i64': return c.i64();
    case 'array': {
      const itemType = c.u32();
      const n = c.size(`array length of ${key}`);
      const out: GgufValue[] = new Array(n);
      for (let i = 0; i < n; i++) out[i] = readValue(c, itemType, key);
      return out;
    }
    default:
      throw new GgufError(`metadata ${key} has unknown value type ${type} at byte ${c.pos - 4}`);
  }
}

/**
 * Parses the header from the first bytes of a GGUF file. Throws NeedMoreBytes when `bytes`
 * ends inside the header, GgufError when the file is not GGUF or is inconsistent.
 * `fileSize`, when known, is used to reject truncated files up front.
 */
export function parseGgufHeader(bytes: Uint8Array, source = 'model', fileSize?: number): GgufHeader {
  const c = new Cursor(bytes);
  try {
    const magic = c.u32();
    if (magic !== 0x46554747) throw new GgufError(`not a GGUF file (magic ${magic.toString(16).padStart(8, '0')} at byte 0)`, source);
    const version = c.u32();
    if (version < 2 || version > 3) throw new GgufError(`unsupported GGUF version ${version}`, source);
    const tensorCount = c.size('tensor count');
    const kvCount = c.size('metadata count');
    const metadata = new Map<string, GgufValue>();
    for (let i = 0; i < kvCount; i++) {
      const key = c.string();
      metadata.set(key, readValue(c, c.u32(), key));
    }
    const alignment = Number(metadata.get('general.alignment') ?? 32);
    const raw: { name: string; dims: number[]; type: number; rel: number }[] = [];
    for (let i = 0; i < tensorCount; i++) {
      const name = c.string();
      const nDims = c.u32();
      if (nDims > 4) throw new GgufError(`tensor ${name} has ${nDims} dimensions`, source);
      const dims: number[] = [];
      for (let d = 0; d < nDims; d++) dims.push(c.size(`dimension of ${name}`));
      raw.push({ name, dims, type: c.u32(), rel: c.size(`offset of ${name}`) });
    }
    const dataOffset = Math.ceil(c.pos / alignment) * alignment;
    const tensors = raw.map((t): TensorInfo => ({
      name: t.name,
      dims: t.dims,
      type: t.type,
      offset: dataOffset + t.rel,
      byteLength: tensorByteLength(t.type, t.dims, t.name, source),
    }));
    if (fileSize !== undefined) checkBounds(tensors, fileSize, source);
    return { version, metadata, tensors, dataOffset, alignment };
  } catch (e) {
    if (e instanceof RangeError) throw new GgufError(`corrupt header (${e.message})`, source);
    throw e;
  }
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

/** Typed accessors for metadata, with errors that name the missing key. */
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
    if (typeof v !== 'number') throw new GgufError(`metadata ${key} is not a number`, this.source);
    return v;
  }
  string(key: string, fallback?: string): string {
    const v = this.map.get(key);
    if (v === undefined) {
      if (fallback !== undefined) return fallback;
      throw new GgufError(`metadata ${key} is missing`, this.source);
    }
    if (typeof v !== 'string') throw new GgufError(`metadata ${key} is not a string`, this.source);
    return v;
  }
  bool(key: string, fallback: boolean): boolean {
    const v = this.map.get(key);
    return typeof v === 'boolean' ? v : fallback;
  }
  array<T extends GgufValue>(key: string): T[] | undefined {
    const v = this.map.get(key);
    if (v === undefined) return undefined;
    if (!Array.isArray(v)) throw new GgufError(`metadata ${key} is not an array`, this.source);
    return v as T[];
  }
}
