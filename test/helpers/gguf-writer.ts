// Writes GGUF v3 files for tests: metadata of any type and tensors of raw bytes. Also rebuilds a
// real model file from its parsed header (so tests can change one thing of it) and records where
// each field went (so fuzz tests can corrupt one field precisely).
import { GgmlType, parseGgufHeader, tensorByteLength, type GgufValue } from '../../src/model/gguf.js';

type ScalarType = 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'f32' | 'u64' | 'i64' | 'f64';

export type MetaValue =
  | { type: ScalarType; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'array'; itemType: ScalarType | 'string' | 'bool'; value: (string | number | boolean)[] };

export interface TensorSpec {
  name: string;
  dims: number[];
  type: GgmlType;
  data: Uint8Array;
}

/** Metadata as a record, or as entries (which may repeat a key). */
export type MetadataSpec = Record<string, MetaValue> | [string, MetaValue][];

export interface WriteOptions {
  alignment?: number;
  /** Data offsets to write in the tensor directory instead of the computed ones. */
  offsets?: number[];
}

/** Byte offsets of the fields of a written file, by kind. */
export interface GgufLayout {
  /** u64 counts and lengths: tensor and metadata counts, string lengths, array lengths. */
  lengths: number[];
  /** u64 tensor dimensions. */
  dims: number[];
  /** u64 tensor data offsets. */
  offsets: number[];
  /** u32 value types, array element types, tensor types and dimension counts. */
  types: number[];
  /** Where the tensor data begins. */
  dataOffset: number;
}

const TYPE_CODE = { u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10, i64: 11, f64: 12 } as const;

class Writer {
  private chunks: Uint8Array[] = [];
  length = 0;
  readonly layout: GgufLayout = { lengths: [], dims: [], offsets: [], types: [], dataOffset: 0 };
  bytes(b: Uint8Array): void {
    this.chunks.push(b);
    this.length += b.byteLength;
  }
  private num(size: number, set: (v: DataView) => void): void {
    const b = new Uint8Array(size);
    set(new DataView(b.buffer));
    this.bytes(b);
  }
  scalar(type: ScalarType, n: number): void {
    switch (type) {
      case 'u8': return this.num(1, (v) => v.setUint8(0, n));
      case 'i8': return this.num(1, (v) => v.setInt8(0, n));
      case 'u16': return this.num(2, (v) => v.setUint16(0, n, true));
      case 'i16': return this.num(2, (v) => v.setInt16(0, n, true));
      case 'u32': return this.num(4, (v) => v.setUint32(0, n, true));
      case 'i32': return this.num(4, (v) => v.setInt32(0, n, true));
      case 'f32': return this.num(4, (v) => v.setFloat32(0, n, true));
      case 'u64': return this.num(8, (v) => v.setBigUint64(0, BigInt(n), true));
      case 'i64': return this.num(8, (v) => v.setBigInt64(0, BigInt(n), true));
      case 'f64': return this.num(8, (v) => v.setFloat64(0, n, true));
    }
  }
  u32(n: number): void { this.scalar('u32', n); }
  u64(n: number): void { this.scalar('u64', n); }
  typeCode(n: number): void {
    this.layout.types.push(this.length);
    this.u32(n);
  }
  lengthField(n: number): void {
    this.layout.lengths.push(this.length);
    this.u64(n);
  }
  string(s: string): void {
    const b = new TextEncoder().encode(s);
    this.lengthField(b.byteLength);
    this.bytes(b);
  }
  pad(alignment: number): void {
    const rem = this.length % alignment;
    if (rem) this.bytes(new Uint8Array(alignment - rem));
  }
  concat(): Uint8Array {
    const out = new Uint8Array(this.length);
    let o = 0;
    for (const c of this.chunks) {
      out.set(c, o);
      o += c.byteLength;
    }
    return out;
  }
}

function writeValue(w: Writer, v: MetaValue): void {
  switch (v.type) {
    case 'bool': return w.bytes(new Uint8Array([v.value ? 1 : 0]));
    case 'string': return w.string(v.value);
    case 'array':
      w.typeCode(TYPE_CODE[v.itemType]);
      w.lengthField(v.value.length);
      for (const item of v.value) writeValue(w, { type: v.itemType, value: item } as MetaValue);
      return;
    default: return w.scalar(v.type, v.value);
  }
}

/** A GGUF file and where its fields are. */
export function writeGgufWithLayout(metadata: MetadataSpec, tensors: TensorSpec[], options: WriteOptions = {}): { bytes: Uint8Array; layout: GgufLayout } {
  const alignment = options.alignment ?? 32;
  const entries = Array.isArray(metadata) ? metadata : Object.entries(metadata);
  const w = new Writer();
  w.u32(0x46554747);
  w.u32(3);
  w.lengthField(tensors.length);
  w.lengthField(entries.length);
  for (const [key, value] of entries) {
    w.string(key);
    w.typeCode(TYPE_CODE[value.type]);
    writeValue(w, value);
  }
  let offset = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    const expected = tensorByteLength(t.type, t.dims, t.name);
    if (expected !== t.data.byteLength) throw new Error(`tensor ${t.name}: ${t.data.byteLength} bytes, expected ${expected}`);
    offsets.push(offset);
    offset += Math.ceil(t.data.byteLength / alignment) * alignment;
  }
  tensors.forEach((t, i) => {
    w.string(t.name);
    w.typeCode(t.dims.length);
    t.dims.forEach((d) => {
      w.layout.dims.push(w.length);
      w.u64(d);
    });
    w.typeCode(t.type);
    w.layout.offsets.push(w.length);
    w.u64(options.offsets?.[i] ?? offsets[i]);
  });
  w.pad(alignment);
  w.layout.dataOffset = w.length;
  for (const t of tensors) {
    w.bytes(t.data);
    w.pad(alignment);
  }
  return { bytes: w.concat(), layout: w.layout };
}

export function writeGguf(metadata: MetadataSpec, tensors: TensorSpec[], alignment = 32): Uint8Array {
  return writeGgufWithLayout(metadata, tensors, { alignment }).bytes;
}

export function f32Bytes(values: Float32Array): Uint8Array {
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}

/** A parsed GGUF file as the writer's input: change it, then write it again. */
export interface GgufSpec {
  metadata: [string, MetaValue][];
  tensors: TensorSpec[];
}

/** Reads a GGUF file into a spec that writeGguf turns back into an equivalent file. */
export function ggufSpec(bytes: Uint8Array): GgufSpec {
  const header = parseGgufHeader(bytes, 'spec', bytes.byteLength);
  const metadata = [...header.metadata].map(([key, value]): [string, MetaValue] => [key, metaValueOf(key, value)]);
  const tensors = header.tensors.map((t) => ({ name: t.name, dims: t.dims, type: t.type, data: bytes.subarray(t.offset, t.offset + t.byteLength) }));
  return { metadata: metadata.filter(([key]) => key !== 'general.alignment'), tensors };
}

function metaValueOf(key: string, value: GgufValue): MetaValue {
  if (typeof value === 'string') return { type: 'string', value };
  if (typeof value === 'boolean') return { type: 'bool', value };
  if (typeof value === 'bigint') return { type: 'u64', value: Number(value) };
  if (typeof value === 'number') return { type: Number.isInteger(value) && !key.endsWith('epsilon') && !key.endsWith('freq_base') ? (value < 0 ? 'i32' : 'u32') : 'f32', value };
  if (value.every((v) => typeof v === 'string')) return { type: 'array', itemType: 'string', value: value as string[] };
  const itemType = key.endsWith('scores') ? 'f32' : 'i32';
  return { type: 'array', itemType, value: value.map(Number) };
}
