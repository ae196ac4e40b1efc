// KV cache layout and the kernel that writes a step's K/V rows into it (shaders/kv.wgsl).
//
// Per layer one K buffer and one V buffer. Each holds numPages pages; a page is
// [numKvHeads][pageSize][headDim], so value (page, kvHead, slot, dim) is element
// ((page * numKvHeads + kvHead) * pageSize + slot) * headDim + dim. Decode reads of one kv head
// thus walk contiguous [pageSize, headDim] blocks. Format 'f32': 4 bytes per value; 'f16': two
// halves per u32 word (dims 2i low, 2i+1 high), so headDim must be even.
//
// Quantized formats 'q8_0' and 'q4_0' keep llama.cpp's blocks along the head dimension (32
// values of one (token, kv head), an f16 scale d, value = d * q with q an int8, or a 4-bit
// q - 8; q4_0 byte j of a block holds values j (low nibble) and j + 16 (high)), stored planar
// within each page so every block's quants start on a word: the page's quants first, in value
// order (byte v for q8_0, bytes of block v / 32 for q4_0), then its scales (block v / 32 at
// 2 * (v / 32) bytes past the quants), padded to a word. Same bytes per block as llama.cpp
// (34 and 18 per 32 values); headDim must be a multiple of 32. shaders/kv_quant.wgsl writes them.
import type { Binding, GpuRuntime } from '../../gpu/index.js';
import { grid, packParams } from './common.js';

export type KvFormat = 'f32' | 'f16' | 'q8_0' | 'q4_0';

export const KV_FORMATS: readonly KvFormat[] = ['f32', 'f16', 'q8_0', 'q4_0'];

/** Values per quantized block (along the head dimension). */
export const KV_QUANT_BLOCK = 32;

export type QuantizedKvFormat = 'q8_0' | 'q4_0';

export function isQuantizedKv(format: KvFormat): format is QuantizedKvFormat {
  return format === 'q8_0' || format === 'q4_0';
}

/** Bits of one quant: the shaders' KV_QUANT define (0 for the float formats). */
export function kvQuantBits(format: KvFormat): number {
  return format === 'q8_0' ? 8 : format === 'q4_0' ? 4 : 0;
}

export interface KvLayout {
  numPages: number;
  pageSize: number;
  numKvHeads: number;
  headDim: number;
  format: KvFormat;
}

/** Values (not bytes) in one K or V buffer. */
export function kvValues(layout: KvLayout): number {
  return layout.numPages * layout.pageSize * layout.numKvHeads * layout.headDim;
}

/** Values of one page in one K or V buffer. */
export function kvPageValues(layout: Omit<KvLayout, 'numPages'>): number {
  return layout.pageSize * layout.numKvHeads * layout.headDim;
}

/** Where a quantized page keeps its parts, in bytes from the page's start. */
export interface KvQuantPageLayout {
  /** Bytes of the quants (the scales start here). */
  quantBytes: number;
  /** Bytes of the scales, padded to a word. */
  scaleBytes: number;
}

export function kvQuantPageLayout(layout: Omit<KvLayout, 'numPages'>): KvQuantPageLayout {
  const values = kvPageValues(layout);
  return {
    quantBytes: (values * kvQuantBits(layout.format)) / 8,
    scaleBytes: Math.ceil(((values / KV_QUANT_BLOCK) * 2) / 4) * 4,
  };
}

/** Bytes of one page in one K or V buffer (a multiple of 4). */
export function kvPageBytes(layout: Omit<KvLayout, 'numPages'>): number {
  const values = kvPageValues(layout);
  if (layout.format === 'f32') return values * 4;
  if (layout.format === 'f16') return values * 2;
  const q = kvQuantPageLayout(layout);
  return q.quantBytes + q.scaleBytes;
}

/** Bytes of one layer's K buffer (the V buffer is the same size). */
export function kvBufferBytes(layout: KvLayout): number {
  return layout.numPages * kvPageBytes(layout);
}

/** Index of value (page, kvHead, slot, dim) in the cache, counted in values. */
export function kvValueIndex(layout: KvLayout, page: number, kvHead: number, slot: number, dim: number): number {
  return ((page * layout.numKvHeads + kvHead) * layout.pageSize + slot) * layout.headDim + dim;
}

export function checkKvLayout(layout: KvLayout): void {
  const { numPages, pageSize, numKvHeads, headDim } = layout;
  if (![numPages, pageSize, numKvHeads, headDim].every((n) => Number.isInteger(n) && n > 0)) {
    throw new Error(`invalid KV layout ${JSON.stringify(layout)}`);
  }
  if (headDim % 2 !== 0) throw new Error(`KV layout: headDim ${headDim} must be even`);
  if (!KV_FORMATS.includes(layout.format)) throw new Error(`KV format '${String(layout.format)}' is not one of ${KV_FORMATS.join(', ')}`);
  if (isQuantizedKv(layout.format) && headDim % KV_QUANT_BLOCK !== 0) {
    throw new Error(`KV format ${layout.format} needs a head dimension that is a multiple of ${KV_QUANT_BLOCK} (blocks of ${KV_QUANT_BLOCK} values); this model's is ${headDim}`);
  }
}

/**
 * Records the write of `tokens` rows of k and v (f32 [tokens, numKvHeads * headDim], k after
 * RoPE) to the cache slots slotMapping[t] (i32, page * pageSize + offset; -1 skips the token).
 * Quantized formats are quantized here, block by block: a token's bytes depend only on its row.
 */
export function writeKv(rt: GpuRuntime, layout: KvLayout, k: Binding, v: Binding, slotMapping: Binding,
  kCache: Binding, vCache: Binding, tokens: number): void {
  checkKvLayout(layout);
  const params = packParams([{ u32: tokens }, { u32: layout.numKvHeads }, { u32: layout.headDim }, { u32: layout.pageSize }]);
  if (isQuantizedKv(layout.format)) {
    const blocks = (tokens * layout.numKvHeads * layout.headDim) / KV_QUANT_BLOCK;
    rt.dispatch({ shader: 'kv_quant', entryPoint: 'write_kv_quant', defines: { KV_QUANT: kvQuantBits(layout.format) } }, params,
      [k, v, slotMapping, kCache, vCache], grid(blocks, 64));
    return;
  }
  const f16 = layout.format === 'f16';
  const words = (tokens * layout.numKvHeads * layout.headDim) / (f16 ? 2 : 1);
  rt.dispatch({ shader: 'kv', entryPoint: 'write_kv', defines: { KV_F16: String(f16) } }, params,
    [k, v, slotMapping, kCache, vCache], grid(words, 256));
}

/** A copy of one KV page to another (copy-on-write), in every layer's K and V. */
export interface PageCopy {
  src: number;
  dst: number;
}

/** u32 words of one page in one K or V buffer. */
export function kvPageWords(layout: KvLayout): number {
  return kvPageBytes(layout) / 4;
}

/** Bytes between the records of a page-copy job buffer (WebGPU's largest storage offset alignment). */
export const PAGE_COPY_STRIDE = 256;

/**
 * The job buffer of page copies: one 256-byte record per copy, [pageWords, src, dst, 0], so each
 * copy binds its own record (no uniform slot, so the step's other dispatches keep their offsets).
 */
export function packPageCopies(layout: KvLayout, copies: readonly PageCopy[]): Uint32Array {
  checkKvLayout(layout);
  const words = new Uint32Array((copies.length * PAGE_COPY_STRIDE) / 4);
  copies.forEach((copy, k) => {
    for (const page of [copy.src, copy.dst]) {
      if (!Number.isInteger(page) || page < 0 || page >= layout.numPages) throw new Error(`page copy: page ${page} is outside the ${layout.numPages} pages`);
    }
    if (copy.src === copy.dst) throw new Error(`page copy: source and destination are both page ${copy.src}`);
    words.set([kvPageWords(layout), copy.src, copy.dst, 0], (k * PAGE_COPY_STRIDE) / 4);
  });
  return words;
}

/**
 * Records the first `count` copies of a job buffer (packPageCopies, uploaded) in one layer's K
 * and V buffers, one dispatch each, in order (a later copy may read what an earlier one wrote).
 */
export function copyKvPages(rt: GpuRuntime, layout: KvLayout, jobs: GPUBuffer, count: number, kCache: Binding, vCache: Binding): void {
  checkKvLayout(layout);
  if (count * PAGE_COPY_STRIDE > jobs.size) throw new Error(`page copy: ${count} copies do not fit a job buffer of ${jobs.size} bytes`);
  // The module's KV_F16 define does not change this kernel (it copies words), but every entry point needs it.
  const key = { shader: 'kv', entryPoint: 'copy_page', defines: { KV_F16: String(layout.format === 'f16') } };
  for (let k = 0; k < count; k++) {
    rt.dispatch(key, null, [{ buffer: jobs, offset: k * PAGE_COPY_STRIDE, size: 16 }, kCache, vCache], grid(kvPageWords(layout), 256));
  }
}
