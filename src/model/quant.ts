// GGUF weight block layouts, CPU dequantization (the reference the GPU kernels must match),
// and the repacking of blocks into the 4-byte-aligned layout the WGSL kernels read.
// Block formats follow llama.cpp ggml-common.h / ggml-quants.c.
import { GgmlType, ggmlTypeName } from './gguf.js';

export interface BlockLayout {
  /** Elements per block. */
  elems: number;
  /** Bytes per block in a GGUF file. */
  ggufBytes: number;
  /** Bytes per block in GPU memory (a multiple of 4, so kernels index u32 words). */
  gpuBytes: number;
}

// Float types use 4-element "blocks" on the GPU, so every kernel reads whole vec4s.
// Q8_0, Q4_0 and Q6_K blocks are padded with 2 bytes: Q8_0 and Q4_0 put the pad after the f16
// scale so their quants start on a word boundary; Q6_K keeps its layout (d ends the block)
// and pads at the end. Padding (rather than splitting scales from quants) keeps one block in
// one contiguous run of words, which is what the per-vec4 dequantizers index.
const LAYOUTS: Partial<Record<GgmlType, BlockLayout>> = {
  [GgmlType.F32]: { elems: 4, ggufBytes: 16, gpuBytes: 16 },
  [GgmlType.F16]: { elems: 4, ggufBytes: 8, gpuBytes: 8 },
  [GgmlType.BF16]: { elems: 4, ggufBytes: 8, gpuBytes: 8 },
  [GgmlType.Q8_0]: { elems: 32, ggufBytes: 34, gpuBytes: 36 },
  [GgmlType.Q4_0]: { elems: 32, ggufBytes: 18, gpuBytes: 20 },
  [GgmlType.Q4_K]: { elems: 256, ggufBytes: 144, gpuBytes: 144 },
  [GgmlType.Q6_K]: { elems: 256, ggufBytes: 210, gpuBytes: 212 },
};

export const SUPPORTED_TYPES: readonly GgmlType[] = Object.keys(LAYOUTS).map(Number) as GgmlType[];

export class UnsupportedTensorTypeError extends Error {
  constructor(readonly tensor: string, readonly type: number) {
    super(
      `tensor ${tensor} has ggml type ${ggmlTypeName(type)}, which wgserve cannot dequantize ` +
        `(supported: ${SUPPORTED_TYPES.map(ggmlTypeName).join(', ')})`,
    );
    this.name = 'UnsupportedTensorTypeError';
  }
}

export function isSupportedType(type: number): type is GgmlType {
  return LAYOUTS[type as GgmlType] !== undefined;
}

export function blockLayout(type: number, tensor = 'tensor'): BlockLayout {
  const layout = LAYOUTS[type as GgmlType];
  if (!layout) throw new UnsupportedTensorTypeError(tensor, type);
  return layout;
}

function isFloatType(type: number): boolean {
  return type === GgmlType.F32 || type === GgmlType.F16 || type === GgmlType.BF16;
}

function floatBytes(type: number): number {
  return type === GgmlType.F32 ? 4 : 2;
}

export function ggufBytesPerRow(type: number, cols: number, tensor = 'tensor'): number {
  if (isFloatType(type)) return cols * floatBytes(type);
  const l = blockLayout(type, tensor);
  checkCols(type, cols, l.elems, tensor);
  return (cols / l.elems) * l.ggufBytes;
}

/** Bytes of one row in GPU memory: whole blocks, padded to 4 bytes. */
export function gpuBytesPerRow(type: number, cols: number, tensor = 'tensor'): number {
  if (isFloatType(type)) return Math.ceil((cols * floatBytes(type)) / 4) * 4;
  const l = blockLayout(type, tensor);
  checkCols(type, cols, l.elems, tensor);
  return (cols / l.elems) * l.gpuBytes;
}

function checkCols(type: number, cols: number, blockElems: number, tensor: string): void {
  if (cols % blockElems !== 0) {
    throw new Error(`tensor ${tensor} (${ggmlTypeName(type)}): row of ${cols} is not a multiple of the block size ${blockElems}`);
  }
}

/**
 * The grid llama.cpp's CPU matmul rounds activations onto before multiplying by a weight of this
 * type (the type's vec_dot_type in ggml-cpu.c type_traits_cpu): Q8_0 blocks of 32 for Q8_0 and
 * Q4_0, Q8_K blocks of 256 for Q4_K and Q6_K, f16 for F16, bf16 for BF16; null for F32 (exact).
 */
export type ActivationGrid = 'q8_0' | 'q8_k' | 'f16' | 'bf16';

const ACTIVATION_GRIDS: Partial<Record<GgmlType, ActivationGrid>> = {
  [GgmlType.F16]: 'f16',
  [GgmlType.BF16]: 'bf16',
  [GgmlType.Q8_0]: 'q8_0',
  [GgmlType.Q4_0]: 'q8_0',
  [GgmlType.Q4_K]: 'q8_k',
  [GgmlType.Q6_K]: 'q8_k',
};

export function activationGrid(type: number): ActivationGrid | null {
  return ACTIVATION_GRIDS[type as GgmlType] ?? null;
}

/** Elements per rounding block of a grid (float grids round element by element). */
export function activationGridBlock(grid: ActivationGrid): number {
  return grid === 'q8_0' ? 32 : grid === 'q8_k' ? 256 : 1;
}

// ---------------------------------------------------------------------------------------
// Scalar conversions

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** IEEE half bits to number, subnormals included. */
export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Number to IEEE half bits, rounding to nearest even (as GGML_FP32_TO_FP16). */
export function f32ToF16(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let h = mant >>> shift;
    if (rest > half || (rest === half && (h & 1))) h++;
    return sign | h;
  }
  let h = mant >>> 13;
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (h & 1))) h++;
  if (h === 0x400) {
    h = 0;
    e++;
    if (e >= 31) return sign | 0x7c00;
  }
  return sign | (e << 10) | h;
}

export function bf16ToF32(b: number): number {
  u32Scratch[0] = (b & 0xffff) << 16;
  return f32Scratch[0];
}

// ---------------------------------------------------------------------------------------
// CPU dequantization (GGUF layout)

type RowDecoder = (v: DataView, at: number, out: Float32Array, o: number) => void;

function decodeQ8_0(v: DataView, at: number, out: Float32Array, o: number): void {
  const d = f16ToF32(v.getUint16(at, true));
  for (let j = 0; j < 32; j++) out[o + j] = d * v.getInt8(at + 2 + j);
}

function decodeQ4_0(v: DataView, at: number, out: Float32Array, o: number): void {
  const d = f16ToF32(v.getUint16(at, true));
  for (let j = 0; j < 16; j++) {
    const q = v.getUint8(at + 2 + j);
    out[o + j] = ((q & 0xf) - 8) * d;
    out[o + j + 16] = ((q >> 4) - 8) * d;
  }
}

/** The 6-bit scale and min of sub-block j of a Q4_K block (llama.cpp get_scale_min_k4). */
export function q4kScaleMin(scales: (i: number) => number, j: number): [number, number] {
  if (j < 4) return [scales(j) & 63, scales(j + 4) & 63];
  return [(scales(j + 4) & 0xf) | ((scales(j - 4) >> 6) << 4), (scales(j + 4) >> 4) | ((scales(j) >> 6) << 4)];
}

function decodeQ4_K(v: DataView, at: number, out: Float32Array, o: number): void {
  const d = f16ToF32(v.getUint16(at, true));
  const dmin = f16ToF32(v.getUint16(at + 2, true));
  const scale = (i: number) => v.getUint8(at + 4 + i);
  const qs = at + 16;
  for (let c = 0; c < 4; c++) {
    const [sc1, m1] = q4kScaleMin(scale, 2 * c);
    const [sc2, m2] = q4kScaleMin(scale, 2 * c + 1);
    const d1 = Math.fround(d * sc1), min1 = Math.fround(dmin * m1);
    const d2 = Math.fround(d * sc2), min2 = Math.fround(dmin * m2);
    for (let l = 0; l < 32; l++) {
      const q = v.getUint8(qs + 32 * c + l);
      out[o + 64 * c + l] = d1 * (q & 0xf) - min1;
      out[o + 64 * c + 32 + l] = d2 * (q >> 4) - min2;
    }
  }
}

function decodeQ6_K(v: DataView, at: number, out: Float32Array, o: number): void {
  const d = f16ToF32(v.getUint16(at + 208, true));
  for (let half = 0; half < 2; half++) {
    const ql = at + 64 * half, qh = at + 128 + 32 * half, sc = at + 192 + 8 * half, y = o + 128 * half;
    for (let l = 0; l < 32; l++) {
      const is = l >> 4;
      const lo = v.getUint8(ql + l), hi = v.getUint8(ql + l + 32), h = v.getUint8(qh + l);
      const q1 = ((lo & 0xf) | ((h & 3) << 4)) - 32;
      const q2 = ((hi & 0xf) | (((h >> 2) & 3) << 4)) - 32;
      const q3 = ((lo >> 4) | (((h >> 4) & 3) << 4)) - 32;
      const q4 = ((hi >> 4) | (((h >> 6) & 3) << 4)) - 32;
      out[y + l] = Math.fround(d * v.getInt8(sc + is)) * q1;
      out[y + l + 32] = Math.fround(d * v.getInt8(sc + is + 2)) * q2;
      out[y + l + 64] = Math.fround(d * v.getInt8(sc + is + 4)) * q3;
      out[y + l + 96] = Math.fround(d * v.getInt8(sc + is + 6)) * q4;
    }
  }
}

const BLOCK_DECODERS: Partial<Record<GgmlType, RowDecoder>> = {
  [GgmlType.Q8_0]: decodeQ8_0,
  [GgmlType.Q4_0]: decodeQ4_0,
  [GgmlType.Q4_K]: decodeQ4_K,
  [GgmlType.Q6_K]: decodeQ6_K,
};

function decodeFloats(type: GgmlType, v: DataView, at: number, count: number, out: Float32Array, o: number): void {
  for (let i = 0; i < count; i++) {
    if (type === GgmlType.F32) out[o + i] = v.getFloat32(at + 4 * i, true);
    else if (type === GgmlType.F16) out[o + i] = f16ToF32(v.getUint16(at + 2 * i, true));
    else out[o + i] = bf16ToF32(v.getUint16(at + 2 * i, true));
  }
}

/**
 * Dequantizes `count` elements (whole blocks) of GGUF-layout data starting at `byteOffset`
 * of `bytes` into `out` at `outOffset`.
 */
export function dequantizeRow(
  type: number,
  bytes: Uint8Array,
  byteOffset: number,
  count: number,
  out: Float32Array,
  outOffset = 0,
  tensor = 'tensor',
): void {
  const needed = ggufBytesPerRow(type, count, tensor);
  if (byteOffset + needed > bytes.byteLength) {
    throw new Error(`tensor ${tensor} (${ggmlTypeName(type)}): ${count} elements need ${needed} bytes at ${byteOffset}, have ${bytes.byteLength}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (isFloatType(type)) return decodeFloats(type as GgmlType, view, byteOffset, count, out, outOffset);
  const decode = BLOCK_DECODERS[type as GgmlType];
  const l = blockLayout(type, tensor);
  if (!decode) throw new UnsupportedTensorTypeError(tensor, type);
  for (let b = 0; b < count / l.elems; b++) decode(view, byteOffset + b * l.ggufBytes, out, outOffset + b * l.elems);
}

/** Dequantizes `count` elements of GGUF-layout data (a whole tensor, or its first rows). */
export function dequantize(type: number, bytes: Uint8Array, count: number, tensor = 'tensor'): Float32Array {
  const out = new Float32Array(count);
  dequantizeRow(type, bytes, 0, count, out, 0, tensor);
  return out;
}

// ---------------------------------------------------------------------------------------
// GPU repacking

/** Where each GGUF block's byte runs go inside the padded GPU block: [srcStart, length, dstStart]. */
const BLOCK_MOVES: Partial<Record<GgmlType, [number, number, number][]>> = {
  [GgmlType.Q8_0]: [[0, 2, 0], [2, 32, 4]],
  [GgmlType.Q4_0]: [[0, 2, 0], [2, 16, 4]],
  [GgmlType.Q6_K]: [[0, 210, 0]],
};

/**
 * Converts a tensor's GGUF bytes (`rows` rows of `cols` elements) to the GPU layout: blocks
 * padded to 4-byte multiples, rows padded to 4 bytes. Weights stay quantized.
 */
export function repackForGpu(type: number, bytes: Uint8Array, rows: number, cols: number, tensor = 'tensor'): Uint8Array {
  const srcRow = ggufBytesPerRow(type, cols, tensor);
  const dstRow = gpuBytesPerRow(type, cols, tensor);
  if (bytes.byteLength < rows * srcRow) {
    throw new Error(`tensor ${tensor} (${ggmlTypeName(type)}): ${rows}x${cols} needs ${rows * srcRow} bytes, got ${bytes.byteLength}`);
  }
  const moves = BLOCK_MOVES[type as GgmlType];
  if (!moves && srcRow === dstRow) return bytes.subarray(0, rows * srcRow);
  const out = new Uint8Array(rows * dstRow);
  if (!moves) {
    for (let r = 0; r < rows; r++) out.set(bytes.subarray(r * srcRow, (r + 1) * srcRow), r * dstRow);
    return out;
  }
  const l = blockLayout(type, tensor);
  const blocks = (rows * cols) / l.elems;
  for (let b = 0; b < blocks; b++) {
    const src = b * l.ggufBytes, dst = b * l.gpuBytes;
    for (const [from, len, to] of moves) out.set(bytes.subarray(src + from, src + from + len), dst + to);
  }
  return out;
}
