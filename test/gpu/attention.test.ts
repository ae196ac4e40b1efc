import { describe, expect, it } from 'vitest';
import type { GpuRuntime } from '../../src/gpu/index.js';
import { BatchBuffers, validateBatch, type Batch } from '../../src/model/batch.js';
import { attention, attentionBatchInfo, AttentionWorkspace, type AttentionArgs } from '../../src/model/kernels/attention.js';
import { attentionReference } from '../../src/model/kernels/attention.reference.js';
import { kvBufferBytes, writeKv, type KvFormat, type KvLayout } from '../../src/model/kernels/kv.js';
import { decodeKvCache, kvCacheReference, writeKvReference } from '../../src/model/kernels/kv.reference.js';
import { getRuntime, maxAbsDiff, randomF32, rng, useShapes } from '../helpers/gpu.js';

/** One sequence of a step: `cached` tokens already in KV from earlier steps, then `fresh` new ones. */
interface SeqSpec {
  cached: number;
  fresh: number;
}

interface Scenario {
  headDim: number;
  heads: number;
  kvHeads: number;
  format: KvFormat;
  pageSize: number;
  seqs: SeqSpec[];
  path?: AttentionArgs['path'];
  splitKeys?: number;
  maxSplits?: number;
  /** Overrides the batch's true max context (a wrong hint must not change results). */
  maxContextHint?: number;
  workspace?: AttentionWorkspace;
  f16Accumulate?: boolean;
}

function shuffled(n: number, seed: number): number[] {
  const r = rng(seed);
  const a = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

/** Pages for every sequence from a shuffled pool with spare pages, so tables are non-contiguous and out of order. */
function blockTables(seqs: SeqSpec[], pageSize: number, seed: number): { tables: Int32Array; maxBlocks: number; numPages: number } {
  const need = seqs.map((s) => Math.ceil((s.cached + s.fresh) / pageSize));
  const maxBlocks = Math.max(...need) + 1;
  const numPages = need.reduce((a, b) => a + b, 0) + 5;
  const pool = shuffled(numPages, seed);
  const tables = new Int32Array(seqs.length * maxBlocks).fill(-1);
  seqs.forEach((_, s) => need[s] > 0 && tables.set(pool.splice(0, need[s]), s * maxBlocks));
  return { tables, maxBlocks, numPages };
}

/** The batch of tokens at positions [from, to) of every sequence (sequences with none are left out). */
function makeBatch(seqs: SeqSpec[], range: (s: SeqSpec) => [number, number], tables: Int32Array, maxBlocks: number, pageSize: number): Batch {
  const positions: number[] = [];
  const starts = [0];
  const contextLens: number[] = [];
  const rows: number[] = [];
  seqs.forEach((spec, s) => {
    const [from, to] = range(spec);
    if (to <= from) return;
    for (let p = from; p < to; p++) positions.push(p);
    starts.push(positions.length);
    contextLens.push(to);
    rows.push(...tables.subarray(s * maxBlocks, (s + 1) * maxBlocks));
  });
  const pos = Int32Array.from(positions);
  const slot = (s: number, p: number) => tables[s * maxBlocks + Math.floor(p / pageSize)] * pageSize + (p % pageSize);
  const slots: number[] = [];
  seqs.forEach((spec, s) => {
    const [from, to] = range(spec);
    for (let p = from; p < to; p++) slots.push(slot(s, p));
  });
  return {
    tokenIds: new Int32Array(pos.length),
    positions: pos,
    seqStarts: Int32Array.from(starts),
    contextLens: Int32Array.from(contextLens),
    blockTables: Int32Array.from(rows),
    maxBlocksPerSeq: maxBlocks,
    slotMapping: Int32Array.from(slots),
    sampleRows: Int32Array.from(starts.slice(1).map((e) => e - 1)),
  };
}

/** Random K and V rows of every position of every sequence: [seq] -> f32 [positions, kvHeads * headDim]. */
function randomKv(seqs: SeqSpec[], width: number, seed: number): { k: Float32Array[]; v: Float32Array[] } {
  return {
    k: seqs.map((s, i) => randomF32((s.cached + s.fresh) * width, seed + 2 * i)),
    v: seqs.map((s, i) => randomF32((s.cached + s.fresh) * width, seed + 2 * i + 1)),
  };
}

/** Rows of the batch's tokens, gathered from per-sequence arrays. */
function rowsOf(perSeq: Float32Array[], seqs: SeqSpec[], range: (s: SeqSpec) => [number, number], width: number): Float32Array {
  const parts: Float32Array[] = [];
  seqs.forEach((spec, s) => {
    const [from, to] = range(spec);
    if (to > from) parts.push(perSeq[s].subarray(from * width, to * width));
  });
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * Runs a step as the model does: earlier K/V are written in a previous submission; this step writes
 * its own K/V and runs attention in one submission. Returns the GPU output and the reference.
 */
async function runScenario(rt: GpuRuntime, sc: Scenario, seed: number) {
  const { tables, maxBlocks, numPages } = blockTables(sc.seqs, sc.pageSize, seed);
  const layout: KvLayout = { numPages, pageSize: sc.pageSize, numKvHeads: sc.kvHeads, headDim: sc.headDim, format: sc.format };
  const width = sc.kvHeads * sc.headDim;
  const { k, v } = randomKv(sc.seqs, width, seed * 100);
  const kCache = rt.buffers.create('kCache', kvBufferBytes(layout));
  const vCache = rt.buffers.create('vCache', kvBufferBytes(layout));
  const kRef = kvCacheReference(layout);
  const vRef = kvCacheReference(layout);
  const write = (batch: Batch, range: (s: SeqSpec) => [number, number], buffers: BatchBuffers) => {
    const kRows = rowsOf(k, sc.seqs, range, width);
    const vRows = rowsOf(v, sc.seqs, range, width);
    writeKv(rt, layout, rt.buffers.createWith('k', kRows), rt.buffers.createWith('v', vRows), buffers.slotMapping, kCache, vCache, batch.tokenIds.length);
    writeKvReference(layout, kRows, vRows, batch.slotMapping, kRef, vRef);
  };

  const earlier = (s: SeqSpec): [number, number] => [0, s.cached];
  if (sc.seqs.some((s) => s.cached > 0)) {
    const past = makeBatch(sc.seqs, earlier, tables, maxBlocks, sc.pageSize);
    const pastBuffers = new BatchBuffers(rt);
    pastBuffers.upload(past);
    write(past, earlier, pastBuffers);
    await rt.sync();
    pastBuffers.destroy();
  }

  const current = (s: SeqSpec): [number, number] => [s.cached, s.cached + s.fresh];
  const batch = makeBatch(sc.seqs, current, tables, maxBlocks, sc.pageSize);
  validateBatch(batch, sc.pageSize);
  const tokens = batch.tokenIds.length;
  const q = randomF32(tokens * sc.heads * sc.headDim, seed + 7, 2);
  const buffers = new BatchBuffers(rt);
  buffers.upload(batch);
  write(batch, current, buffers);
  const out = rt.buffers.create('out', q.byteLength);
  attention(rt, {
    ...attentionBatchInfo(batch), ...(sc.maxContextHint ? { maxContext: sc.maxContextHint } : {}), layout, q: rt.buffers.createWith('q', q), kCache, vCache, out, batch: buffers,
    heads: sc.heads, path: sc.path, splitKeys: sc.splitKeys, maxSplits: sc.maxSplits, workspace: sc.workspace, f16Accumulate: sc.f16Accumulate,
  });
  await rt.sync();
  const gpu = await rt.buffers.readF32(out, 0, q.length);
  const cacheDiff = Math.max(
    maxAbsDiff(decodeKvCache(layout, await rt.buffers.read(kCache)), kRef),
    maxAbsDiff(decodeKvCache(layout, await rt.buffers.read(vCache)), vRef),
  );
  const ref = attentionReference({ layout, q, kCache: kRef, vCache: vRef, heads: sc.heads, batch, f16Accumulate: sc.f16Accumulate });
  buffers.destroy();
  return { gpu, ref, cacheDiff };
}

const MODELS = [
  { name: 'headDim 4, 2 heads, 2 kv heads (llama-2-tiny-random)', headDim: 4, heads: 2, kvHeads: 2, pageSize: 4 },
  { name: 'headDim 16, 4 heads, 2 kv heads', headDim: 16, heads: 4, kvHeads: 2, pageSize: 8 },
  { name: 'headDim 32, 4 heads, 1 kv head', headDim: 32, heads: 4, kvHeads: 1, pageSize: 8 },
];

// A prefill chunk from position 0, a chunk continuing at position 30 (its keys span two 32-key
// tiles), and two decode tokens with contexts over several pages.
const MIXED: SeqSpec[] = [
  { cached: 0, fresh: 21 },
  { cached: 30, fresh: 12 },
  { cached: 37, fresh: 1 },
  { cached: 20, fresh: 1 },
];
const DECODE: SeqSpec[] = [
  { cached: 70, fresh: 1 },
  { cached: 5, fresh: 1 },
  { cached: 33, fresh: 1 },
];

// Sequences with 64+ new tokens (llama.cpp's tiled prompt path when f16Accumulate; keys past one
// and two 64-key tiles, one starting mid-context) beside a short chunk and a decode token.
const LONG_PROMPTS: SeqSpec[] = [
  { cached: 0, fresh: 70 },
  { cached: 60, fresh: 66 },
  { cached: 0, fresh: 9 },
  { cached: 40, fresh: 1 },
];

const TOLERANCE = 1e-5; // outputs are averages of values in [-1, 1]
// Split decode merges its partials in f32 (llama.cpp splits only contexts of 512 keys and more,
// by thread count): the f16 accumulators of the splits then differ by a few f16 ulps.
const F16_ACC_SPLIT_TOLERANCE = 2 * 2 ** -11;

describe('paged attention', () => {
  let seed = 1;
  for (const m of MODELS) {
    for (const format of ['f32', 'f16'] as const) {
      describe(`${m.name}, ${format} KV`, () => {
        const run = async (seqs: SeqSpec[], extra: Partial<Scenario> = {}) => {
          const rt = await getRuntime();
          const r = await runScenario(rt, { ...m, format, seqs, ...extra }, seed++);
          expect(r.cacheDiff).toBe(0);
          expect(maxAbsDiff(r.gpu, r.ref)).toBeLessThan(TOLERANCE);
        };
        it('mixed prefill and decode batch (tiled + split paths, 3 splits)', () => run(MIXED, { splitKeys: 16 }));
        it('mixed batch and split-K decode with the other kernel shapes (GPU vs CPU adapter)', async () => {
          const rt = await getRuntime();
          useShapes(rt, !rt.softwareShapes);
          await run(MIXED, { splitKeys: 16 });
          await run(DECODE, { splitKeys: 8 });
        });
        it('mixed batch, one split per decode token', () => run(MIXED));
        it('mixed batch through the tiled kernel only', () => run(MIXED, { path: 'tiled' }));
        it('decode-only batch with split-K over long contexts (9 splits)', () => run(DECODE, { splitKeys: 8 }));
        it('decode-only batch, split count capped at 3', () => run(DECODE, { splitKeys: 8, maxSplits: 3 }));
        it('decode-only batch, single split', () => run(DECODE));
        it('decode-only batch, underestimated maxContext (last split runs to the end)', () => run(DECODE, { splitKeys: 8, maxContextHint: 20 }));
      });
    }
  }

  it('handles a 24-token prefill with 128-dim heads and 8:1 GQA', async () => {
    const rt = await getRuntime();
    const sc: Scenario = { headDim: 128, heads: 8, kvHeads: 1, pageSize: 16, format: 'f16', seqs: [{ cached: 40, fresh: 24 }, { cached: 100, fresh: 1 }], splitKeys: 32 };
    const r = await runScenario(rt, sc, 99);
    expect(r.cacheDiff).toBe(0);
    expect(maxAbsDiff(r.gpu, r.ref)).toBeLessThan(TOLERANCE);
  });

  it('grows a caller-owned workspace for the split partials', async () => {
    const rt = await getRuntime();
    const workspace = new AttentionWorkspace(rt);
    workspace.reserve(1, 4);
    const sc: Scenario = { ...MODELS[1], format: 'f32', seqs: [...DECODE, ...DECODE.map((s) => ({ ...s, cached: s.cached + 300 }))], splitKeys: 8, maxSplits: 64, workspace };
    const r = await runScenario(rt, sc, 123);
    expect(maxAbsDiff(r.gpu, r.ref)).toBeLessThan(TOLERANCE);
    workspace.destroy();
  });

  describe('llama.cpp f16 accumulation (f16Accumulate)', () => {
    // headDim 48 and 64: whole 32-element chunks of ggml_vec_dot_f16 with and without leftover dims.
    const f16Models = [...MODELS, { name: 'headDim 48, 2 heads, 1 kv head', headDim: 48, heads: 2, kvHeads: 1, pageSize: 8 },
      { name: 'headDim 64, 2 heads, 2 kv heads', headDim: 64, heads: 2, kvHeads: 2, pageSize: 16 }];
    for (const m of f16Models) {
      it(`${m.name}: tiled and direct paths bit for bit, split paths close`, async () => {
        const rt = await getRuntime();
        for (const [i, extra] of [{ path: 'tiled' as const }, {}].entries()) {
          const r = await runScenario(rt, { ...m, format: 'f16', seqs: MIXED, f16Accumulate: true, ...extra }, 500 + i);
          expect(maxAbsDiff(r.gpu, r.ref)).toBe(0);
        }
        const r = await runScenario(rt, { ...m, format: 'f16', seqs: MIXED, f16Accumulate: true, splitKeys: 16 }, 502);
        expect(maxAbsDiff(r.gpu, r.ref)).toBeLessThan(F16_ACC_SPLIT_TOLERANCE);
      });
      it(`${m.name}: sequences of 64+ new tokens take llama.cpp's tiled prompt path, bit for bit`, async () => {
        const rt = await getRuntime();
        const r = await runScenario(rt, { ...m, format: 'f16', seqs: LONG_PROMPTS, f16Accumulate: true }, 503);
        expect(maxAbsDiff(r.gpu, r.ref)).toBe(0);
      });
    }
  });
});
