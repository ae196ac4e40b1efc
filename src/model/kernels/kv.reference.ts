// CPU reference of the KV write, on caches held as logical values (Float32Array in the layout of
// kv.ts), plus the decoding of a GPU cache buffer into such values.
import { f16BitsToF32, roundToF16 } from './common.js';
import { kvValueIndex, kvValues, type KvLayout, type PageCopy } from './kv.js';

/** An empty reference cache (one of K or V). */
export function kvCacheReference(layout: KvLayout): Float32Array {
  return new Float32Array(kvValues(layout));
}

/** Writes rows of k and v to their slots; values are rounded to f16 when the format is f16. */
export function writeKvReference(layout: KvLayout, k: Float32Array, v: Float32Array, slotMapping: Int32Array,
  kCache: Float32Array, vCache: Float32Array): void {
  const { numKvHeads, headDim, pageSize } = layout;
  const round = layout.format === 'f16' ? roundToF16 : (x: number) => x;
  const row = numKvHeads * headDim;
  slotMapping.forEach((slot, t) => {
    if (slot < 0) return;
    const page = Math.floor(slot / pageSize);
    for (let h = 0; h < numKvHeads; h++) {
      for (let d = 0; d < headDim; d++) {
        const dst = kvValueIndex(layout, page, h, slot % pageSize, d);
        kCache[dst] = round(k[t * row + h * headDim + d]);
        vCache[dst] = round(v[t * row + h * headDim + d]);
      }
    }
  });
}

/** The values of a GPU K or V buffer's bytes. */
export function decodeKvCache(layout: KvLayout, bytes: ArrayBuffer): Float32Array {
  const n = kvValues(layout);
  if (layout.format === 'f32') return new Float32Array(bytes, 0, n).slice();
  const halves = new Uint16Array(bytes, 0, n);
  return Float32Array.from(halves, f16BitsToF32);
}

/** Copies page copy.src over page copy.dst in a reference cache (one of K or V). */
export function copyKvPageReference(layout: KvLayout, copy: PageCopy, cache: Float32Array): void {
  const page = layout.pageSize * layout.numKvHeads * layout.headDim;
  cache.copyWithin(copy.dst * page, copy.src * page, (copy.src + 1) * page);
}
