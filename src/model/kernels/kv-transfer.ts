// Whole KV pages between a live cache and bytes in another format: the context store's GPU path.
// compressKvPages: pages of every layer, converted on the GPU to a store format (q8_0 by
// default, whatever the live format) and read back. restoreKvPages: such bytes uploaded and
// converted on the GPU into the live format, into given pages. A conversion is read_pages
// (shaders/kv_pages.wgsl: pages -> f32 rows, dequantized) then the KV write of the target
// format (kv.ts writeKv) from those rows; equal formats are copied byte for byte.
import type { GpuRuntime } from '../../gpu/index.js';
import { grid, packParams } from './common.js';
import { checkKvLayout, isQuantizedKv, kvPageBytes, kvQuantBits, writeKv, type KvFormat, type KvLayout } from './kv.js';

/** One layer's K and V buffers. */
export interface KvLayerBuffers {
  keys: GPUBuffer[];
  values: GPUBuffer[];
}

/** The store's form of pages: a format on the live layout's shape. */
export interface StoredPageFormat {
  format: KvFormat;
}

/** Per page, per layer, the K and V bytes. */
export interface PageBytes {
  k: Uint8Array[];
  v: Uint8Array[];
}

function storedLayout(live: KvLayout, stored: StoredPageFormat, numPages: number): KvLayout {
  const layout: KvLayout = { ...live, numPages, format: stored.format };
  checkKvLayout(layout);
  return layout;
}

function sameFormat(a: KvLayout, b: KvLayout): boolean {
  return a.format === b.format;
}

function checkPages(layout: KvLayout, pages: number[]): void {
  for (const p of pages) {
    if (!Number.isInteger(p) || p < 0 || p >= layout.numPages) throw new Error(`KV pages: page ${p} is outside the ${layout.numPages} pages`);
  }
}

/** Records read_pages: pages of `cache` (layout) as f32 rows [pages.length * pageSize, numKvHeads * headDim]. */
export function readKvPages(rt: GpuRuntime, layout: KvLayout, cache: GPUBuffer, pages: GPUBuffer, pageCount: number, rows: GPUBuffer): void {
  const unit = isQuantizedKv(layout.format) ? 32 : 2;
  const units = (pageCount * layout.pageSize * layout.numKvHeads * layout.headDim) / unit;
  const params = packParams([{ u32: layout.numKvHeads }, { u32: layout.headDim }, { u32: layout.pageSize }, { u32: pageCount }]);
  const defines = { KV_F16: String(layout.format === 'f16'), KV_QUANT: kvQuantBits(layout.format) };
  rt.dispatch({ shader: 'kv_pages', entryPoint: 'read_pages', defines }, params, [cache, pages, rows], grid(units, 64));
}

/** Converts pages (listed in `srcPages` of `src`) into pages `dstPages` of `dst`, K and V of one layer. */
function convertPages(rt: GpuRuntime, src: KvLayout, srcK: GPUBuffer, srcV: GPUBuffer, srcPages: number[],
  dst: KvLayout, dstK: GPUBuffer, dstV: GPUBuffer, dstPages: number[], scratch: { pages: GPUBuffer; slots: GPUBuffer; k: GPUBuffer; v: GPUBuffer }): void {
  if (sameFormat(src, dst)) {
    const bytes = kvPageBytes(src);
    srcPages.forEach((p, i) => {
      rt.copy(srcK, p * bytes, dstK, dstPages[i] * bytes, bytes);
      rt.copy(srcV, p * bytes, dstV, dstPages[i] * bytes, bytes);
    });
    return;
  }
  readKvPages(rt, src, srcK, scratch.pages, srcPages.length, scratch.k);
  readKvPages(rt, src, srcV, scratch.pages, srcPages.length, scratch.v);
  writeKv(rt, dst, scratch.k, scratch.v, scratch.slots, dstK, dstV, srcPages.length * src.pageSize);
}

function makeScratch(rt: GpuRuntime, layout: KvLayout, srcPages: number[], dstPages: number[]) {
  const rowsBytes = srcPages.length * layout.pageSize * layout.numKvHeads * layout.headDim * 4;
  const slots = Int32Array.from({ length: dstPages.length * layout.pageSize }, (_, i) => dstPages[Math.floor(i / layout.pageSize)] * layout.pageSize + (i % layout.pageSize));
  return {
    pages: rt.buffers.createWith('kvPages.pages', Uint32Array.from(srcPages)),
    slots: rt.buffers.createWith('kvPages.slots', slots),
    k: rt.buffers.create('kvPages.k', rowsBytes),
    v: rt.buffers.create('kvPages.v', rowsBytes),
  };
}

function destroyAll(rt: GpuRuntime, buffers: GPUBuffer[]): void {
  for (const b of buffers) {
    rt.forget(b);
    rt.buffers.destroy(b);
  }
}

/**
 * The bytes of `pages` of every layer in the stored format, converted on the GPU and read back
 * (one readback for all layers). Result[i] is page pages[i].
 */
export async function compressKvPages(rt: GpuRuntime, live: KvLayout, cache: KvLayerBuffers, pages: number[], stored: StoredPageFormat = { format: 'q8_0' }): Promise<PageBytes[]> {
  checkKvLayout(live);
  checkPages(live, pages);
  const n = pages.length;
  if (n === 0) return [];
  const layers = cache.keys.length;
  const target = storedLayout(live, stored, n);
  const pageBytes = kvPageBytes(target);
  const layerBytes = n * pageBytes;
  // Staging: per layer a K and a V "cache" of n pages, side by side in one buffer, read at once.
  const staging = rt.buffers.create('kvPages.staging', 2 * layers * layerBytes);
  const scratch = makeScratch(rt, live, pages, pages.map((_, i) => i));
  const tmpK = rt.buffers.create('kvPages.tmpK', layerBytes);
  const tmpV = rt.buffers.create('kvPages.tmpV', layerBytes);
  try {
    for (let l = 0; l < layers; l++) {
      convertPages(rt, live, cache.keys[l], cache.values[l], pages, target, tmpK, tmpV, pages.map((_, i) => i), scratch);
      rt.copy(tmpK, 0, staging, (2 * l) * layerBytes, layerBytes);
      rt.copy(tmpV, 0, staging, (2 * l + 1) * layerBytes, layerBytes);
    }
    rt.submit();
    const all = new Uint8Array(await rt.buffers.read(staging));
    return pages.map((_, i) => ({
      k: Array.from({ length: layers }, (_, l) => all.slice((2 * l) * layerBytes + i * pageBytes, (2 * l) * layerBytes + (i + 1) * pageBytes)),
      v: Array.from({ length: layers }, (_, l) => all.slice((2 * l + 1) * layerBytes + i * pageBytes, (2 * l + 1) * layerBytes + (i + 1) * pageBytes)),
    }));
  } finally {
    destroyAll(rt, [staging, tmpK, tmpV, scratch.pages, scratch.slots, scratch.k, scratch.v]);
  }
}

/**
 * Records the upload of stored pages and their conversion into pages `dstPages` of the live
 * cache, every layer (restoring a context: no prefill of these tokens).
 */
export async function restoreKvPages(rt: GpuRuntime, live: KvLayout, cache: KvLayerBuffers, dstPages: number[], stored: StoredPageFormat, data: PageBytes[]): Promise<void> {
  checkKvLayout(live);
  checkPages(live, dstPages);
  const n = dstPages.length;
  if (data.length !== n) throw new Error(`KV restore: ${data.length} pages of data for ${n} destination pages`);
  if (n === 0) return;
  const layers = cache.keys.length;
  const source = storedLayout(live, stored, n);
  const pageBytes = kvPageBytes(source);
  for (const d of data) {
    if (d.k.length !== layers || d.v.length !== layers || [...d.k, ...d.v].some((b) => b.length !== pageBytes)) {
      throw new Error(`KV restore: pages must have ${layers} layers of ${pageBytes} bytes (${stored.format})`);
    }
  }
  const srcK = rt.buffers.create('kvPages.srcK', n * pageBytes);
  const srcV = rt.buffers.create('kvPages.srcV', n * pageBytes);
  const scratch = makeScratch(rt, live, dstPages.map((_, i) => i), dstPages);
  try {
    for (let l = 0; l < layers; l++) {
      data.forEach((d, i) => {
        rt.buffers.write(srcK, d.k[l], i * pageBytes);
        rt.buffers.write(srcV, d.v[l], i * pageBytes);
      });
      convertPages(rt, source, srcK, srcV, dstPages.map((_, i) => i), live, cache.keys[l], cache.values[l], dstPages, scratch);
      // The staging buffers are rewritten for the next layer: run this one first.
      rt.submit();
    }
    await rt.sync();
  } finally {
    destroyAll(rt, [srcK, srcV, scratch.pages, scratch.slots, scratch.k, scratch.v]);
  }
}
