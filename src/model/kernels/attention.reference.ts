// CPU reference of paged attention (float64 math) over reference caches holding logical values
// in the layout of kv.ts (see kv.reference.ts).
import type { Batch } from '../batch.js';
import { roundToF16 } from './common.js';
import { kvValueIndex, type KvLayout } from './kv.js';
import { ggmlExpf } from './elementwise.reference.js';
import { fmaF32, ggmlVecDot } from './matmul.reference.js';

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

const f32 = Math.fround;

/**
 * llama.cpp's ggml_compute_forward_flash_attn_ext_f16_one_chunk for one query row with an f16
 * KV cache, in its f32 arithmetic (x86 AVX2 build): keys in order, f16 accumulators, fused
 * multiply-adds, expf correctly rounded, the output scaled by 1 / S.
 */
function attendF16(q: Float32Array, key: (j: number, d: number) => number, value: (j: number, d: number) => number,
  keys: number, headDim: number, scale: number): Float32Array {
  const qh = Array.from(q, roundToF16);
  const acc = new Float32Array(headDim);
  let max = -Infinity;
  let sum = 0;
  for (let j = 0; j < keys; j++) {
    const s = f32(ggmlVecDot(qh, Array.from({ length: headDim }, (_, d) => key(j, d))) * scale);
    let ms = 1;
    let vs = 1;
    if (s > max) {
      ms = f32(Math.exp(f32(max - s)));
      max = s;
      for (let d = 0; d < headDim; d++) acc[d] = roundToF16(f32(acc[d] * ms));
    } else {
      vs = f32(Math.exp(f32(s - max)));
    }
    for (let d = 0; d < headDim; d++) acc[d] = roundToF16(fmaF32(value(j, d), vs, acc[d]));
    sum = f32(f32(sum * ms) + vs);
  }
  const inv = f32(1 / sum);
  return acc.map((x) => x * inv);
}

/** llama.cpp's tiled prompt path takes ubatches of this many tokens and more (GGML_FA_TILE_Q), keys in tiles of LLAMA_KV_TILE. */
export const LLAMA_TILED_MIN_QUERIES = 64;
const LLAMA_KV_TILE = 64;

/**
 * llama.cpp's ggml_compute_forward_flash_attn_ext_tiled for one query row (x86 AVX2): f32 query,
 * fmaf-chained scores, per 64-key tile an online-softmax step with ggml_v_expf probabilities
 * (summed 8 at a time in f32, the chunks in double), fmaf-chained f32 value accumulation.
 */
function attendLlamaTiled(q: Float32Array, key: (j: number, d: number) => number, value: (j: number, d: number) => number,
  keys: number, headDim: number, scale: number): Float32Array {
  const acc = new Float32Array(headDim);
  let max = -Infinity;
  let sum = 0;
  for (let tile = 0; tile < keys; tile += LLAMA_KV_TILE) {
    const scores = new Float32Array(LLAMA_KV_TILE).fill(-Infinity);
    for (let k = 0; k < LLAMA_KV_TILE && tile + k < keys; k++) {
      let dot = 0;
      for (let d = 0; d < headDim; d++) dot = fmaF32(q[d], key(tile + k, d), dot);
      scores[k] = f32(dot * scale);
    }
    const tileMax = Math.max(...scores);
    if (tileMax === -Infinity) continue;
    const newMax = Math.max(max, tileMax);
    if (newMax > max) {
      const ms = f32(Math.exp(f32(max - newMax)));
      for (let d = 0; d < headDim; d++) acc[d] = f32(acc[d] * ms);
      sum = f32(sum * ms);
    }
    max = newMax;
    const probs = scores.map((s) => (s === -Infinity ? 0 : ggmlExpf(f32(s - newMax))));
    let tileSum = 0;
    for (let c = 0; c < LLAMA_KV_TILE; c += 8) {
      const a = [0, 1, 2, 3].map((i) => f32(probs[c + 4 + i] + probs[c + i]));
      tileSum += f32(f32(a[0] + a[2]) + f32(a[1] + a[3]));
    }
    sum = f32(sum + tileSum);
    for (let k = 0; k < LLAMA_KV_TILE && tile + k < keys; k++) {
      for (let d = 0; d < headDim; d++) acc[d] = fmaF32(probs[k], value(tile + k, d), acc[d]);
    }
  }
  const inv = sum === 0 ? 0 : f32(1 / sum);
  return acc.map((x) => x * inv);
}

export function attentionReference(a: AttentionReferenceArgs): Float32Array {
  const { layout, heads, batch } = a;
  const { headDim, pageSize } = layout;
  const group = heads / layout.numKvHeads;
  const out = new Float32Array(batch.positions.length * heads * headDim);
  const scale = f32(1 / Math.sqrt(headDim));
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
          const tiled = batch.seqStarts[s + 1] - batch.seqStarts[s] >= LLAMA_TILED_MIN_QUERIES && headDim % 8 === 0;
          const attend = tiled ? attendLlamaTiled : attendF16;
          out.set(attend(a.q.subarray(qBase, qBase + headDim), at(a.kCache), at(a.vCache), keys, headDim, scale), qBase);
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
