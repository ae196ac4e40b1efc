// Writes GGUF v3 files for tests: metadata of any type and tensors of raw bytes.
import { GgmlType, tensorByteLength } from '../../src/model/gguf.js';

export type MetaValue =
  | { type: 'u32' | 'i32' | 'f32' | 'u64'; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'array'; itemType: 'string' | 'f32' | 'i32' | 'u32'; value: (string | number)[] };

export interface TensorSpec {
  name: string;
  dims: number[];
  type: GgmlType;
  data: Uint8Array;
}

const TYPE_CODE = { u32: 4, i32: 5, f32: 6, bool: 7, string: 8, array: 9, u64: 10 } as const;

class Writer {
  private chunks: Uint8Array[] = [];
  length = 0;
  bytes(b: Uint8Array): void {
    this.chunks.push(b);
    this.length += b.byteLength;
  }
  private num(n: number, size: number, set: (v: DataView) => void): void {
    const b = new Uint8Array(size);
    set(new DataView(b.buffer));
    this.bytes(b);
    void n;
  }
  u32(n: number): void { this.num(n, 4, (v) => v.setUint32(0, n, true)); }
  i32(n: number): void { this.num(n, 4, (v) => v.setInt32(0, n, true)); }
  f32(n: number): void { this.num(n, 4, (v) => v.setFloat32(0, n, true)); }
  u64(n: number): void { this.num(n, 8, (v) => v.setBigUint64(0, BigInt(n), true)); }
  string(s: string): void {
    const b = new TextEncoder().encode(s);
    this.u64(b.byteLength);
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
    case 'u32': return w.u32(v.value);
    case 'i32': return w.i32(v.value);
    case 'f32': return w.f32(v.value);
    case 'u64': return w.u64(v.value);
    case 'bool': return w.bytes(new Uint8Array([v.value ? 1 : 0]));
    case 'string': return w.string(v.value);
    case 'array':
      w.u32(TYPE_CODE[v.itemType]);
      w.u64(v.value.length);
      for (const item of v.value) writeValue(w, { type: v.itemType, value: item } as MetaValue);
  }
}

export function writeGguf(metadata: Record<string, MetaValue>, tensors: TensorSpec[], alignment = 32): Uint8Array {
  const w = new Writer();
  w.u32(0x46554747);
  w.u32(3);
  w.u64(tensors.length);
  w.u64(Object.keys(metadata).length);
  for (const [key, value] of Object.entries(metadata)) {
    w.string(key);
    w.u32(TYPE_CODE[value.type]);
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
    w.u32(t.dims.length);
    t.dims.forEach((d) => w.u64(d));
    w.u32(t.type);
    w.u64(offsets[i]);
  });
  w.pad(alignment);
  for (const t of tensors) {
    w.bytes(t.data);
    w.pad(alignment);
  }
  return w.concat();
}

export function f32Bytes(values: Float32Array): Uint8Array {
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}
