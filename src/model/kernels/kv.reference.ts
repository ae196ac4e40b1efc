// CPU reference of the KV write, on caches held as logical values (Float32Array in the layout of
// kv.ts), plus the conversion between a cache buffer's bytes and such values. Quantized formats
// hold the values their blocks dequantize to: q8_0 as llama.cpp's quantize_row_q8_0 (x86 AVX2),
// q4_0 as quantize_row_q4_0_ref (the GGUF quantizer of quantize.ts).
import { GgmlType } from '../gguf.js';
import { dequantize } from '../quant.js';
import { quantizeActivationsQ8_0, quantizeQ4_0 } from '../quantize.js';
import { f16BitsToF32, f32ToF16Bits, roundToF16 } from './common.js';
import { kvPageBytes, kvPageValues, kvQuantPageLayout, kvValueIndex, kvValues, KV_QUANT_BLOCK, type KvLayout, type PageCopy } from './kv.js';

/** An empty reference cache (one of K or V). */
export function kvCacheReference(layout: KvLayout): Float32Array {
  return new Float32Array(kvValues(layout));
}

/** Quantized blocks of values (a multiple of 32): int quants (q4_0: nibble - 8) and f16-rounded scales. */
export function quantizeKvBlocks(format: 'q8_0' | 'q4_0', x: Float32Array): { q: Int8Array; d: Float32Array } {
  if (format === 'q8_0') return quantizeActivationsQ8_0(x);
  const bytes = quantizeQ4_0(x);
  const blocks = x.length / KV_QUANT_BLOCK;
  const q = new Int8Array(x.length);
  const d = new Float32Array(blocks);
  for (let b = 0; b < blocks; b++) {
    d[b] = f16BitsToF32(bytes[b * 18] | (bytes[b * 18 + 1] << 8));
    for (let j = 0; j < 16; j++) {
      const byte = bytes[b * 18 + 2 + j];
      q[b * 32 + j] = (byte & 15) - 8;
      q[b * 32 + j + 16] = (byte >> 4) - 8;
    }
  }
  return { q, d };
}

/** Dequantized values of quantized blocks. */
function dequantizeKvBlocks(q: Int8Array, d: Float32Array): Float32Array {
  return Float32Array.from(q, (qi, i) => qi * d[Math.floor(i / KV_QUANT_BLOCK)]);
}

/** The values a row of a (token, kv head) holds once stored in the layout's format (and read back). */
export function storedKvValues(layout: Pick<KvLayout, 'format'>, x: Float32Array): Float32Array {
  const { format } = layout;
  if (format === 'f32') return x.slice();
  if (format === 'f16') return x.map(roundToF16);
  if (format === 'q4_0') return dequantize(GgmlType.Q4_0, quantizeQ4_0(x), x.length);
  const { q, d } = quantizeKvBlocks(format, x);
  return dequantizeKvBlocks(q, d);
}

/** Writes rows of k and v to their slots, as stored in the layout's format. */
export function writeKvReference(layout: KvLayout, k: Float32Array, v: Float32Array, slotMapping: Int32Array,
  kCache: Float32Array, vCache: Float32Array): void {
  const { numKvHeads, headDim, pageSize } = layout;
  const row = numKvHeads * headDim;
  slotMapping.forEach((slot, t) => {
    if (slot < 0) return;
    const page = Math.floor(slot / pageSize);
    for (let h = 0; h < numKvHeads; h++) {
      const src = t * row + h * headDim;
      const dst = kvValueIndex(layout, page, h, slot % pageSize, 0);
      kCache.set(storedKvValues(layout, k.subarray(src, src + headDim)), dst);
      vCache.set(storedKvValues(layout, v.subarray(src, src + headDim)), dst);
    }
  });
}

/** The values of a GPU K or V buffer's bytes (whole pages of the layout). */
export function decodeKvCache(layout: KvLayout, bytes: ArrayBuffer): Float32Array {
  const n = kvValues(layout);
  if (layout.format === 'f32') return new Float32Array(bytes, 0, n).slice();
  if (layout.format === 'f16') return Float32Array.from(new Uint16Array(bytes, 0, n), f16BitsToF32);
  const out = new Float32Array(n);
  const pageValues = kvPageValues(layout);
  const pageBytes = kvPageBytes(layout);
  const { quantBytes } = kvQuantPageLayout(layout);
  const u8 = new Uint8Array(bytes);
  const view = new DataView(bytes);
  for (let p = 0; p < layout.numPages; p++) {
    const base = p * pageBytes;
    for (let v = 0; v < pageValues; v++) {
      const d = f16BitsToF32(view.getUint16(base + quantBytes + 2 * Math.floor(v / KV_QUANT_BLOCK), true));
      let q: number;
      if (layout.format === 'q8_0') {
        q = view.getInt8(base + v);
      } else {
        const j = v % KV_QUANT_BLOCK;
        const byte = u8[base + (v - j) / 2 + (j % 16)];
        q = (j < 16 ? byte & 15 : byte >> 4) - 8;
      }
      out[p * pageValues + v] = q * d;
    }
  }
  return out;
}

/**
 * Bytes of whole pages in the layout's format holding `values` (numPages pages of logical
 * values), quantizing block by block as the KV write does.
 */
export function encodeKvCache(layout: KvLayout, values: Float32Array): Uint8Array {
  const n = kvValues(layout);
  if (values.length !== n) throw new Error(`encodeKvCache: ${values.length} values for a layout of ${n}`);
  if (layout.format === 'f32') return new Uint8Array(values.slice().buffer);
  if (layout.format === 'f16') return new Uint8Array(Uint16Array.from(values, f32ToF16Bits).buffer);
  const pageValues = kvPageValues(layout);
  const pageBytes = kvPageBytes(layout);
  const { quantBytes } = kvQuantPageLayout(layout);
  const out = new Uint8Array(layout.numPages * pageBytes);
  const view = new DataView(out.buffer);
  for (let p = 0; p < layout.numPages; p++) {
    const base = p * pageBytes;
    const { q, d } = quantizeKvBlocks(layout.format, values.subarray(p * pageValues, (p + 1) * pageValues));
    d.forEach((s, b) => view.setUint16(base + quantBytes + 2 * b, f32ToF16Bits(s), true));
    for (let v = 0; v < pageValues; v++) {
      if (layout.format === 'q8_0') {
        view.setInt8(base + v, q[v]);
      } else {
        const j = v % KV_QUANT_BLOCK;
        const at = base + (v - j) / 2 + (j % 16);
        out[at] |= (q[v] + 8) << (j < 16 ? 0 : 4);
      }
    }
  }
  return out;
}

/** Copies page copy.src over page copy.dst in a reference cache (one of K or V). */
export function copyKvPageReference(layout: KvLayout, copy: PageCopy, cache: Float32Array): void {
  const page = layout.pageSize * layout.numKvHeads * layout.headDim;
  cache.copyWithin(copy.dst * page, copy.src * page, (copy.src + 1) * page);
}
