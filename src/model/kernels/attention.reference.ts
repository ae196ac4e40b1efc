// CPU reference of paged attention (float64 math) over reference caches holding logical values
// in the layout of kv.ts (see kv.reference.ts).
import type { Batch } from '../batch.js';
import { roundToF16 } from './common.js';
import { kvValueIndex, type KvLayout } from './kv.js';

export interface AttentionReferenceArgs {
  layout: KvLayout;
  q: Float32Array;
  kCache: Float32Array;
  vCache: Float32Array;
  heads: number;
  batch: Pick<Batch, 'positions' | 'seqStarts' | 'blockTables' | 'maxBlocksPerSeq'>;
  /** llama.cpp's CPU flash-attention rounding (see AttentionArgs.f16Accumulate). */
  f16Accumulate?: boolean;
}

/** llama.cpp's ggml_compute_forward_flash_attn_ext_f16 for one query row: keys in order, f16 accumulators. */
function attendF16(q: Float32Array, key: (j: number, d: number) => number, value: (j: number, d: number) => number,
  keys: number, headDim: number, scale: number): Float64Array {
  const qh = Array.from(q, roundToF16);
  const acc = new Float64Array(headDim);
  let max = -Infinity;
  let sum = 0;
  for (let j = 0; j < keys; j++) {
    let dot = 0;
    for (let d = 0; d < headDim; d++) dot += qh[d] * key(j, d);
    const s = dot * scale;
    let ms = 1;
    let vs = 1;
    if (s > max) {
      ms = Math.exp(max - s);
      max = s;
      for (let d = 0; d < headDim; d++) acc[d] = roundToF16(acc[d] * ms);
    } else {
      vs = Math.exp(s - max);
    }
    for (let d = 0; d < headDim; d++) acc[d] = roundToF16(acc[d] + roundToF16(value(j, d)) * vs);
    sum = sum * ms + vs;
  }
  return acc.map((x) => x / sum);
}

export function attentionReference(a: AttentionReferenceArgs): Float32Array {
  const { layout, heads, batch } = a;
  const { headDim, pageSize } = layout;
  const group = heads / layout.numKvHeads;
  const out = new Float32Array(batch.positions.length * heads * headDim);
  const scale = 1 / Math.sqrt(headDim);
  for (let s = 0; s + 1 < batch.seqStarts.length; s++) {
    const slotOf = (j: number) => ({ page: batch.blockTables[s * batch.maxBlocksPerSeq + Math.floor(j / pageSize)], slot: j % pageSize });
    for (let t = batch.seqStarts[s]; t < batch.seqStarts[s + 1]; t++) {
      const keys = batch.positions[t] + 1;
      for (let h = 0; h < heads; h++) {
        const kvHead = Math.floor(h / group);
        const qBase = (t * heads + h) * headDim;
        if (a.f16Accumulate) {
          const at = (cache: Float32Array) => (j: number, d: number) => {
            const { page, slot } = slotOf(j);
            return cache[kvValueIndex(layout, page, kvHead, slot, d)];
          };
          out.set(attendF16(a.q.subarray(qBase, qBase + headDim), at(a.kCache), at(a.vCache), keys, headDim, scale), qBase);
          continue;
        }
        const scores = new Float64Array(keys);
        for (let j = 0; j < keys; j++) {
          const { page, slot } = slotOf(j);
          let dot = 0;
          for (let d = 0; d < headDim; d++) dot += a.q[qBase + d] * a.kCache[kvValueIndex(layout, page, kvHead, slot, d)];
          scores[j] = dot * scale;
        }
        const max = Math.max(...scores);
        let sum = 0;
        for (let j = 0; j < keys; j++) sum += (scores[j] = Math.exp(scores[j] - max));
        const acc = new Float64Array(headDim);
        for (let j = 0; j < keys; j++) {
          const { page, slot } = slotOf(j);
          for (let d = 0; d < headDim; d++) acc[d] += (scores[j] / sum) * a.vCache[kvValueIndex(layout, page, kvHead, slot, d)];
        }
        out.set(acc, qBase);
      }
    }
  }
  return out;
}
