// CPU reference of paged attention (float64 math) over reference caches holding logical values
// in the layout of kv.ts (see kv.reference.ts).
import type { Batch } from '../batch.js';
import { kvValueIndex, type KvLayout } from './kv.js';

export interface AttentionReferenceArgs {
  layout: KvLayout;
  q: Float32Array;
  kCache: Float32Array;
  vCache: Float32Array;
  heads: number;
  batch: Pick<Batch, 'positions' | 'seqStarts' | 'blockTables' | 'maxBlocksPerSeq'>;
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
