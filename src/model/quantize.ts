// CPU quantizers that write GGUF-layout blocks, for tests and tools: Q8_0 and Q4_0 as
// llama.cpp's reference quantizers (quantize_row_q8_0_ref, quantize_row_q4_0_ref), and
// float encodings (F32, F16, BF16). Also the activation rounding llama.cpp's CPU matmul applies
// (roundActivations), the reference of shaders/quantize_act.wgsl.
import { GgmlType, ggmlTypeName } from './gguf.js';
import { f16ToF32, f32ToF16, type ActivationGrid } from './quant.js';

/** C roundf: halves round away from zero. */
function roundAway(x: number): number {
  return Math.sign(x) * Math.floor(Math.abs(x) + 0.5);
}

function checkBlocks(values: Float32Array, block: number, what: string): number {
  if (values.length % block !== 0) throw new Error(`${what}: ${values.length} values are not a multiple of ${block}`);
  return values.length / block;
}

export function quantizeQ8_0(values: Float32Array): Uint8Array {
  const blocks = checkBlocks(values, 32, 'Q8_0');
  const out = new Uint8Array(blocks * 34);
  const view = new DataView(out.buffer);
  for (let b = 0; b < blocks; b++) {
    const x = values.subarray(b * 32, b * 32 + 32);
    let amax = 0;
    for (const v of x) amax = Math.max(amax, Math.abs(v));
    const d = Math.fround(amax / 127);
    const id = d ? Math.fround(1 / d) : 0;
    view.setUint16(b * 34, f32ToF16(d), true);
    for (let j = 0; j < 32; j++) view.setInt8(b * 34 + 2 + j, roundAway(Math.fround(x[j] * id)));
  }
  return out;
}

export function quantizeQ4_0(values: Float32Array): Uint8Array {
  const blocks = checkBlocks(values, 32, 'Q4_0');
  const out = new Uint8Array(blocks * 18);
  const view = new DataView(out.buffer);
  for (let b = 0; b < blocks; b++) {
    const x = values.subarray(b * 32, b * 32 + 32);
    let amax = 0, max = 0;
    for (const v of x) {
      if (amax < Math.abs(v)) {
        amax = Math.abs(v);
        max = v;
      }
    }
    const d = Math.fround(max / -8);
    const id = d ? Math.fround(1 / d) : 0;
    view.setUint16(b * 18, f32ToF16(d), true);
    for (let j = 0; j < 16; j++) {
      // (int8_t)(x + 8.5f) truncates; the argument is positive, so it is a floor.
      const lo = Math.min(15, Math.trunc(Math.fround(Math.fround(x[j] * id) + 8.5)));
      const hi = Math.min(15, Math.trunc(Math.fround(Math.fround(x[16 + j] * id) + 8.5)));
      view.setUint8(b * 18 + 2 + j, lo | (hi << 4));
    }
  }
  return out;
}

/** Encodes values as F32, F16 (round to nearest even) or BF16 (round to nearest even). */
export function encodeFloats(type: GgmlType, values: Float32Array): Uint8Array {
  if (type === GgmlType.F32) return new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
  const out = new Uint16Array(values.length);
  if (type === GgmlType.F16) values.forEach((v, i) => (out[i] = f32ToF16(v)));
  else if (type === GgmlType.BF16) values.forEach((v, i) => (out[i] = f32ToBf16(v)));
  else throw new Error(`encodeFloats: ${ggmlTypeName(type)} is not a float type`);
  return new Uint8Array(out.buffer);
}

function f32ToBf16(v: number): number {
  const u = new Uint32Array(new Float32Array([v]).buffer)[0];
  if ((u & 0x7fffffff) > 0x7f800000) return (u >>> 16) | 0x40; // quiet NaN
  return (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
}

/** Quantizes (or encodes) `values` to GGUF bytes of a type this module can write. */
export function quantize(type: GgmlType, values: Float32Array): Uint8Array {
  if (type === GgmlType.Q8_0) return quantizeQ8_0(values);
  if (type === GgmlType.Q4_0) return quantizeQ4_0(values);
  return encodeFloats(type, values);
}

/**
 * Random Q4_K or Q6_K blocks (the K-quants have no reference quantizer here): random quants
 * and 6-bit / int8 scales, with small positive f16 super-block scales so values stay finite
 * and of order one.
 */
export function randomKQuant(type: GgmlType.Q4_K | GgmlType.Q6_K, blocks: number, random: () => number): Uint8Array {
  const size = type === GgmlType.Q4_K ? 144 : 210;
  const out = new Uint8Array(blocks * size);
  const view = new DataView(out.buffer);
  for (let i = 0; i < out.length; i++) out[i] = Math.floor(random() * 256);
  for (let b = 0; b < blocks; b++) {
    const at = b * size;
    if (type === GgmlType.Q4_K) {
      view.setUint16(at, f32ToF16(0.001 + random() * 0.01), true);
      view.setUint16(at + 2, f32ToF16(0.001 + random() * 0.01), true);
    } else {
      for (let s = 0; s < 16; s++) view.setInt8(at + 192 + s, Math.floor(random() * 64) - 32);
      view.setUint16(at + 208, f32ToF16(0.001 + random() * 0.004), true);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Activation rounding (what llama.cpp's CPU matmul does to x before its dot products)

/** Round half to even (_mm256_round_ps with _MM_ROUND_NEAREST, and nearest_int's magic add). */
export function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** v rounded to the nearest f16 (ties to even), as a number. */
export function toF16Grid(v: number): number {
  return f16ToF32(f32ToF16(v));
}

/** v rounded to the nearest bf16 (ties to even), as a number. */
export function toBf16Grid(v: number): number {
  const u = f32ToBf16(v);
  const f = new Float32Array(new Uint32Array([u << 16]).buffer);
  return f[0];
}

/** Q8_0 activation blocks as int8 quants and f16-rounded scales (d[b] per 32 elements). */
export interface Q8Blocks {
  q: Int8Array;
  d: Float32Array;
}

/**
 * x quantized to Q8_0 blocks as quantize_row_q8_0 (x86 AVX2) does for llama.cpp's vec_dot:
 * d = f16(amax / 127), id = 127 / amax, q = round-half-even(x * id). The reference of
 * quantize_act.wgsl quant_q8_0; roundActivations('q8_0') is d * q.
 */
export function quantizeActivationsQ8_0(x: Float32Array): Q8Blocks {
  const blocks = checkBlocks(x, 32, 'activations (q8_0)');
  const q = new Int8Array(x.length);
  const d = new Float32Array(blocks);
  for (let b = 0; b < blocks; b++) {
    const v = x.subarray(b * 32, (b + 1) * 32);
    let amax = 0;
    for (const e of v) amax = Math.max(amax, Math.abs(e));
    if (amax === 0) continue;
    d[b] = toF16Grid(Math.fround(amax / 127));
    const id = Math.fround(127 / amax);
    for (let j = 0; j < 32; j++) q[b * 32 + j] = Math.min(127, Math.max(-128, roundHalfEven(Math.fround(v[j] * id))));
  }
  return { q, d };
}

/** Q8_K activation blocks: int8 quants, d per 256 elements, and bsums (sums of each 16 quants). */
export interface Q8KBlocks {
  q: Int8Array;
  d: Float32Array;
  bsums: Int32Array;
}

/**
 * x quantized to Q8_K blocks as quantize_row_q8_K_ref (what llama.cpp's x86 build uses for
 * K-quant weights): max = first x of largest |x|, iscale = -127 / max, q = min(127,
 * round-half-even(iscale * x)), d = 1 / iscale (f32). The reference of quantize_act.wgsl quant_q8_k.
 */
export function quantizeActivationsQ8K(x: Float32Array): Q8KBlocks {
  const blocks = checkBlocks(x, 256, 'activations (q8_k)');
  const q = new Int8Array(x.length);
  const d = new Float32Array(blocks);
  const bsums = new Int32Array(blocks * 16);
  for (let b = 0; b < blocks; b++) {
    const v = x.subarray(b * 256, (b + 1) * 256);
    let amax = 0, max = 0;
    for (const e of v) {
      if (Math.abs(e) > amax) {
        amax = Math.abs(e);
        max = e;
      }
    }
    if (amax === 0) continue;
    const iscale = Math.fround(-127 / max);
    d[b] = Math.fround(1 / iscale);
    for (let j = 0; j < 256; j++) {
      q[b * 256 + j] = Math.min(127, roundHalfEven(Math.fround(iscale * v[j])));
      bsums[b * 16 + (j >> 4)] += q[b * 256 + j];
    }
  }
  return { q, d, bsums };
}

/**
 * x' = x rounded onto the grid llama.cpp's CPU matmul uses for a weight type (quant.ts
 * activationGrid), block by block along the flat array (rows are whole blocks). f32 arithmetic
 * throughout: a float op in double precision then Math.fround is the correctly rounded f32 op.
 *  q8_0: quantize_row_q8_0 (x86 AVX2): d = amax / 127 stored as f16, id = 127 / amax,
 *        q = round-half-even(x * id), x' = f16(d) * q.
 *  q8_k: quantize_row_q8_K_ref: max = first x of largest |x|, iscale = -127 / max,
 *        q = min(127, round-half-even(iscale * x)), d = 1 / iscale (f32), x' = d * q.
 *  f16, bf16: each element rounded to nearest even.
 */
export function roundActivations(grid: ActivationGrid, x: Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  if (grid === 'f16' || grid === 'bf16') {
    const round = grid === 'f16' ? toF16Grid : toBf16Grid;
    for (let i = 0; i < x.length; i++) out[i] = round(x[i]);
    return out;
  }
  if (grid === 'q8_0') {
    const { q, d } = quantizeActivationsQ8_0(x);
    for (let i = 0; i < x.length; i++) out[i] = Math.fround(d[i >> 5] * q[i]);
    return out;
  }
  const { q, d } = quantizeActivationsQ8K(x);
  for (let i = 0; i < x.length; i++) out[i] = Math.fround(d[i >> 8] * q[i]);
  return out;
}
