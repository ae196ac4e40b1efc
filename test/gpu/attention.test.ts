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
  /** The kernel set (default 'fast'); splitKeys, maxSplits and f16Accumulate are the llama.cpp set's. */
  numerics?: 'fast' | 'llama.cpp';
  /** Fast set: keys per chunk. */
  chunkKeys?: number;
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
    numerics: sc.numerics, chunkKeys: sc.chunkKeys,
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

/** The formats a model's head dimension allows: the quantized ones need blocks of 32 values. */
function formatsFor(headDim: number): KvFormat[] {
  return headDim % 32 === 0 ? ['f32', 'f16', 'q8_0', 'q4_0'] : ['f32', 'f16'];
}

describe('paged attention, fast set', () => {
  let seed = 1;
  for (const m of MODELS) {
    for (const format of formatsFor(m.headDim)) {
      describe(`${m.name}, ${format} KV`, () => {
        const run = async (seqs: SeqSpec[], extra: Partial<Scenario> = {}) => {
          const rt = await getRuntime();
          const r = await runScenario(rt, { ...m, format, seqs, ...extra }, seed++);
          expect(r.cacheDiff).toBe(0);
          expect(maxAbsDiff(r.gpu, r.ref)).toBeLessThan(TOLERANCE);
        };
        it('mixed prefill and decode batch (tiled + split paths, chunks of 16 keys)', () => run(MIXED, { chunkKeys: 16 }));
        it('mixed batch and split-K decode with the other kernel shapes (GPU vs CPU adapter)', async () => {
          const rt = await getRuntime();
          useShapes(rt, !rt.softwareShapes);
          await run(MIXED, { chunkKeys: 16 });
          await run(DECODE, { chunkKeys: 8 });
        });
        it('mixed batch, one chunk per sequence', () => run(MIXED));
        it('mixed batch through the tiled kernel only, chunks of 8 keys', () => run(MIXED, { path: 'tiled', chunkKeys: 8 }));
        it('decode-only batch with long contexts (9 chunks of 8 keys)', () => run(DECODE, { chunkKeys: 8 }));
        it('decode-only batch, single chunk', () => run(DECODE));
        it('decode-only batch, overestimated maxContext (empty chunks are skipped)', () => run(DECODE, { chunkKeys: 8, maxContextHint: 200 }));
      });
    }
  }

  it.each(['f16', 'q8_0', 'q4_0'] as const)('handles a 24-token prefill with 128-dim heads and 8:1 GQA (%s KV)', async (format) => {
    const rt = await getRuntime();
    const sc: Scenario = { headDim: 128, heads: 8, kvHeads: 1, pageSize: 16, format, seqs: [{ cached: 40, fresh: 24 }, { cached: 100, fresh: 1 }], chunkKeys: 32 };
    const r = await runScenario(rt, sc, 99);
    expect(r.cacheDiff).toBe(0);
    expect(maxAbsDiff(r.gpu, r.ref)).toBeLessThan(TOLERANCE);
  });

  it('quantized KV: a 3-kv-head page whose blocks share scale words across tokens and steps', async () => {
    const rt = await getRuntime();
    for (const format of ['q8_0', 'q4_0'] as const) {
      const sc: Scenario = { headDim: 32, heads: 3, kvHeads: 3, pageSize: 3, format, seqs: [{ cached: 7, fresh: 5 }, { cached: 2, fresh: 1 }], chunkKeys: 8 };
      const r = await runScenario(rt, sc, 321);
      expect(r.cacheDiff).toBe(0);
      expect(maxAbsDiff(r.gpu, r.ref)).toBeLessThan(TOLERANCE);
    }
  });

  it('grows a caller-owned workspace for the split partials', async () => {
    const rt = await getRuntime();
    const workspace = new AttentionWorkspace(rt);
    workspace.reserve(1, 4);
    const sc: Scenario = { ...MODELS[1], format: 'f32', seqs: [...DECODE, ...DECODE.map((s) => ({ ...s, cached: s.cached + 300 }))], chunkKeys: 8, workspace };
    const r = await runScenario(rt, sc, 123);
    expect(maxAbsDiff(r.gpu, r.ref)).toBeLessThan(TOLERANCE);
    workspace.destroy();
  });

  it.each([
    { shapes: 'GPU shapes', software: false, chunkKeys: 16 },
    { shapes: 'CPU-adapter shapes', software: true, chunkKeys: 16 },
    { shapes: 'CPU-adapter shapes', software: true, chunkKeys: 256 },
  ])('a token computes the same bits whatever the path, the chunking of its prompt and its batch mates ($shapes, chunks of $chunkKeys)', async ({ software, chunkKeys }) => {
    const rt = await getRuntime();
    useShapes(rt, software);
    await expectBatchInvariant(rt, { headDim: 16, heads: 4, kvHeads: 2, pageSize: 8, format: 'f16' }, chunkKeys);
  });

  it.each(['q8_0', 'q4_0'] as const)('with %s KV a token computes the same bits whatever the path, chunking and batch mates', async (format) => {
    const rt = await getRuntime();
    await expectBatchInvariant(rt, { headDim: 32, heads: 4, kvHeads: 2, pageSize: 8, format }, 16);
  });
});

/**
 * One sequence of 45 tokens run through attention in many ways (whole prompt; chunks of 1, 3 and
 * 16 tokens; each chunk alone or beside other sequences' prefill chunks and decode tokens); every
 * token's output must be bitwise the same in all of them.
 */
async function expectBatchInvariant(rt: GpuRuntime, m: Omit<Scenario, 'seqs'>, chunkKeys: number): Promise<void> {
  const total = 45;
  const width = m.kvHeads * m.headDim;
  const qWidth = m.heads * m.headDim;
  // Sequence 0 is the one checked; 1 and 2 are batch mates with contexts of their own.
  const lengths = [total, 60, 33];
  const layout: KvLayout = { numPages: 64, pageSize: m.pageSize, numKvHeads: m.kvHeads, headDim: m.headDim, format: m.format };
  const maxBlocks = Math.ceil(64 / m.pageSize);
  const pages = shuffled(64, 5);
  const tables = lengths.map((n) => pages.splice(0, Math.ceil(n / m.pageSize)));
  const k = lengths.map((n, s) => randomF32(n * width, 40 + s));
  const v = lengths.map((n, s) => randomF32(n * width, 50 + s));
  const q = lengths.map((n, s) => randomF32(n * qWidth, 60 + s, 2));
  const kCache = rt.buffers.create('kCache', kvBufferBytes(layout));
  const vCache = rt.buffers.create('vCache', kvBufferBytes(layout));
  const workspace = new AttentionWorkspace(rt);
  const buffers = new BatchBuffers(rt);

  /** One step: for each (sequence, from, to), its tokens [from, to); returns sequence 0's output rows. */
  async function step(parts: [number, number, number][]): Promise<Float32Array> {
    const positions: number[] = [], starts = [0], ctx: number[] = [], bt: number[] = [], slots: number[] = [];
    const kRows: number[] = [], vRows: number[] = [], qRows: number[] = [];
    for (const [s, from, to] of parts) {
      for (let p = from; p < to; p++) {
        positions.push(p);
        slots.push(tables[s][Math.floor(p / m.pageSize)] * m.pageSize + (p % m.pageSize));
        kRows.push(...k[s].subarray(p * width, (p + 1) * width));
        vRows.push(...v[s].subarray(p * width, (p + 1) * width));
        qRows.push(...q[s].subarray(p * qWidth, (p + 1) * qWidth));
      }
      starts.push(positions.length);
      ctx.push(to);
      const row = new Array(maxBlocks).fill(-1);
      tables[s].forEach((pg, i) => (row[i] = pg));
      bt.push(...row);
    }
    const batch: Batch = {
      tokenIds: new Int32Array(positions.length), positions: Int32Array.from(positions), seqStarts: Int32Array.from(starts),
      contextLens: Int32Array.from(ctx), blockTables: Int32Array.from(bt), maxBlocksPerSeq: maxBlocks,
      slotMapping: Int32Array.from(slots), sampleRows: Int32Array.from(starts.slice(1).map((e) => e - 1)),
    };
    buffers.upload(batch);
    const kb = rt.buffers.createWith('k', Float32Array.from(kRows));
    const vb = rt.buffers.createWith('v', Float32Array.from(vRows));
    const qb = rt.buffers.createWith('q', Float32Array.from(qRows));
    const out = rt.buffers.create('out', qRows.length * 4);
    writeKv(rt, layout, kb, vb, buffers.slotMapping, kCache, vCache, positions.length);
    attention(rt, { ...attentionBatchInfo(batch), layout, q: qb, kCache, vCache, out, batch: buffers, heads: m.heads, chunkKeys, workspace });
    await rt.sync();
    const first = parts.findIndex(([s]) => s === 0);
    const rows = first < 0 ? new Float32Array(0) : await rt.buffers.readF32(out, starts[first] * qWidth * 4, (starts[first + 1] - starts[first]) * qWidth);
    for (const b of [kb, vb, qb, out]) rt.buffers.destroy(b);
    return rows;
  }

  /** Sequence 0's outputs for all its tokens, prefilled in chunks of `chunk` (then decoded token by token), with `mates` beside. */
  async function runAll(chunk: number, decodeFrom: number, mates: boolean): Promise<Float32Array> {
    const outRows: Float32Array[] = [];
    // The mates' earlier keys are written first (their own prefill), so they can decode beside.
    await step([[1, 0, 50], [2, 0, 30]]);
    let mate1 = 50, mate2 = 30;
    for (let from = 0; from < total;) {
      const to = from < decodeFrom ? Math.min(from + chunk, decodeFrom, total) : from + 1;
      const parts: [number, number, number][] = [];
      if (mates && mate1 < 60) parts.push([1, mate1, ++mate1]);  // a decode token before ours
      parts.push([0, from, to]);
      if (mates && mate2 < 33) { parts.push([2, mate2, Math.min(mate2 + 2, 33)]); mate2 = Math.min(mate2 + 2, 33); }  // a prefill chunk after ours
      outRows.push(await step(parts));
      from = to;
    }
    const all = new Float32Array(total * qWidth);
    let at = 0;
    for (const r of outRows) { all.set(r, at); at += r.length; }
    return all;
  }

  const want = await runAll(total, total, false);  // the whole prompt in one step
  const variants: [string, number, number, boolean][] = [
    ['token by token', 1, 0, false], ['chunks of 3', 3, total, false], ['chunks of 16 then decode', 16, 32, false],
    ['chunks of 3 with batch mates', 3, total, true], ['chunks of 16 then decode, with batch mates', 16, 32, true], ['whole prompt with batch mates', total, total, true],
  ];
  for (const [name, chunk, decodeFrom, mates] of variants) {
    const got = await runAll(chunk, decodeFrom, mates);
    for (let i = 0; i < want.length; i++) {
      if (!Object.is(got[i], want[i])) expect.fail(`${name}: token ${Math.floor(i / qWidth)} element ${i % qWidth}: ${got[i]} vs ${want[i]} (whole prompt)`);
    }
  }
  buffers.destroy();
  workspace.destroy();
  for (const b of [kCache, vCache]) rt.buffers.destroy(b);
}

describe('paged attention, llama.cpp set', () => {
  let seed = 1001;
  it('refuses quantized KV formats, naming the fast set', async () => {
    const rt = await getRuntime();
    await expect(runScenario(rt, { ...MODELS[2], format: 'q8_0', seqs: MIXED, numerics: 'llama.cpp' }, 7)).rejects.toThrow(/llama\.cpp kernel set reads f32 and f16 KV caches only, not q8_0/);
  });

  for (const m of MODELS) {
    for (const format of ['f32', 'f16'] as const) {
      describe(`${m.name}, ${format} KV`, () => {
        const run = async (seqs: SeqSpec[], extra: Partial<Scenario> = {}) => {
          const rt = await getRuntime();
          const r = await runScenario(rt, { ...m, format, seqs, numerics: 'llama.cpp', ...extra }, seed++);
          expect(r.cacheDiff).toBe(0);
          expect(maxAbsDiff(r.gpu, r.ref)).toBeLessThan(TOLERANCE);
        };
        it('mixed prefill and decode batch (tiled + split paths, 3 splits)', () => run(MIXED, { splitKeys: 16 }));
        it('decode-only batch, split count capped at 3', () => run(DECODE, { splitKeys: 8, maxSplits: 3 }));
        it('decode-only batch, underestimated maxContext (last split runs to the end)', () => run(DECODE, { splitKeys: 8, maxContextHint: 20 }));
      });
    }
  }

  describe('llama.cpp f16 accumulation (f16Accumulate)', () => {
    // headDim 48 and 64: whole 32-element chunks of ggml_vec_dot_f16 with and without leftover dims.
    const f16Models = [...MODELS, { name: 'headDim 48, 2 heads, 1 kv head', headDim: 48, heads: 2, kvHeads: 1, pageSize: 8 },
      { name: 'headDim 64, 2 heads, 2 kv heads', headDim: 64, heads: 2, kvHeads: 2, pageSize: 16 }];
    const llama = { numerics: 'llama.cpp' as const, format: 'f16' as const, f16Accumulate: true };
    for (const m of f16Models) {
      it(`${m.name}: tiled and direct paths bit for bit, split paths close`, async () => {
        const rt = await getRuntime();
        for (const [i, extra] of [{ path: 'tiled' as const }, {}].entries()) {
          const r = await runScenario(rt, { ...m, ...llama, seqs: MIXED, ...extra }, 500 + i);
          expect(maxAbsDiff(r.gpu, r.ref)).toBe(0);
        }
        const r = await runScenario(rt, { ...m, ...llama, seqs: MIXED, splitKeys: 16 }, 502);
        expect(maxAbsDiff(r.gpu, r.ref)).toBeLessThan(F16_ACC_SPLIT_TOLERANCE);
      });
      it(`${m.name}: sequences of 64+ new tokens take llama.cpp's tiled prompt path, bit for bit`, async () => {
        const rt = await getRuntime();
        const r = await runScenario(rt, { ...m, ...llama, seqs: LONG_PROMPTS }, 503);
        expect(maxAbsDiff(r.gpu, r.ref)).toBe(0);
      });
    }
  });
});
