// CPU quantizers that write GGUF-layout blocks, for tests and tools: Q8_0 and Q4_0 as
// llama.cpp's reference quantizers (quantize_row_q8_0_ref, quantize_row_q4_0_ref), and
// float encodings (F32, F16, BF16).
import { GgmlType, ggmlTypeName } from './gguf.js';
import { f32ToF16 } from './quant.js';

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
