// Paged attention over a ragged batch, reading K/V through block tables from the cache layout of
// kv.ts. Two kernel sets: 'fast' (shaders/attention.wgsl, default) and 'llama.cpp'
// (shaders/attention_llama.wgsl: llama.cpp's CPU flash attention bit for bit with f16Accumulate).
//
// Paths: sequences with several new tokens (prefill chunks) go to the tiled kernel (a workgroup per
// tile of a sequence's tokens x the query heads of one kv head). Sequences with one new token
// (decode) go to the split-K kernel: each workgroup covers a range of keys of one (sequence,
// kv head), writing partial max/sum/accumulators that a reduce kernel merges. When every sequence
// has one token only the split path runs; when none has, only the tiled one. All grid sizes come from
// the CPU-side counts in the args, never from a readback.
// In the fast set the split ranges are fixed chunks of `chunkKeys` keys, the same chunks the tiled
// kernel merges in order, with one tile size for both paths: a token's output does not depend on
// which path computed it or on the rest of the batch.
import type { Binding, GpuRuntime } from '../../gpu/index.js';
import type { Batch } from '../batch.js';
import { packParams } from './common.js';
import { checkKvLayout, isQuantizedKv, kvQuantBits, type KvLayout } from './kv.js';

/** The batch's GPU index arrays the kernels read (BatchBuffers has them). */
export interface AttentionBatchBuffers {
  /** i32 [tokens] */
  positions: Binding;
  /** i32 [seqs + 1] */
  seqStarts: Binding;
  /** i32 [seqs * maxBlocksPerSeq] */
  blockTables: Binding;
}

export interface AttentionArgs {
  layout: KvLayout;
  /** f32 [tokens, heads * headDim], after RoPE. */
  q: Binding;
  /** This layer's K and V buffers, already holding this step's K/V. */
  kCache: Binding;
  vCache: Binding;
  /** f32 [tokens, heads * headDim]. */
  out: Binding;
  batch: AttentionBatchBuffers;
  maxBlocksPerSeq: number;
  tokens: number;
  seqs: number;
  /** Query heads; a multiple of layout.numKvHeads. */
  heads: number;
  /** Largest contextLen of the batch (sizes the split-K grid). */
  maxContext: number;
  /** Most new tokens of one sequence (tightens the tiled grid; default: tokens). */
  maxQueryLen?: number;
  /** 'tiled' runs every sequence through the tiled kernel; 'auto' (default) as described above. */
  path?: 'auto' | 'tiled';
  /** The kernel set (default 'fast'). */
  numerics?: 'fast' | 'llama.cpp';
  /**
   * Fast set: keys per chunk (a power of 2, default DEFAULT_CHUNK_KEYS). Every query row is
   * reduced chunk by chunk in this order, so it must stay the same for a model's whole life (the
   * forward pass derives it from the context length): a different value computes other bits.
   */
  chunkKeys?: number;
  /** llama.cpp set: keys per split of the split-K path (default 256, rounded up to whole key tiles); at most `maxSplits` (default 32) splits. */
  splitKeys?: number;
  maxSplits?: number;
  /**
   * llama.cpp set: round like llama.cpp's CPU flash attention (what its goldens come from): the
   * query rounded to f16, keys visited in order with value accumulators rounded to f16 after
   * every key; for sequences of 64+ new tokens its tiled prompt kernel.
   */
  f16Accumulate?: boolean;
  /** Buffers for split partials; default: one per runtime, grown on demand. */
  workspace?: AttentionWorkspace;
}

/** The CPU-side counts attention() needs, from a Batch. */
export function attentionBatchInfo(b: Batch): Pick<AttentionArgs, 'tokens' | 'seqs' | 'maxContext' | 'maxQueryLen' | 'maxBlocksPerSeq'> {
  const seqs = b.seqStarts.length - 1;
  let maxQueryLen = 0;
  for (let s = 0; s < seqs; s++) maxQueryLen = Math.max(maxQueryLen, b.seqStarts[s + 1] - b.seqStarts[s]);
  return { tokens: b.tokenIds.length, seqs, maxContext: Math.max(0, ...b.contextLens), maxQueryLen, maxBlocksPerSeq: b.maxBlocksPerSeq };
}

const DEFAULT_SPLIT_KEYS = 256;
const DEFAULT_MAX_SPLITS = 32;
export const DEFAULT_CHUNK_KEYS = 256;

/**
 * The fast set's chunk for a model's context length: 256 keys, or more for long contexts so a
 * sequence has at most 64 chunks (bounding the split partials).
 */
export function chunkKeysFor(contextLength: number): number {
  return Math.max(DEFAULT_CHUNK_KEYS, 2 ** Math.ceil(Math.log2(Math.max(1, Math.ceil(contextLength / 64)))));
}

/** Split partials the fast set needs for a batch: (seq, head, chunk) entries. */
export function attentionPartials(seqs: number, heads: number, maxContext: number, chunkKeys = DEFAULT_CHUNK_KEYS): number {
  return seqs * heads * Math.max(1, Math.ceil(maxContext / chunkKeys));
}

/** Split partials: accumulators f32 [seqs, heads, splits, headDim] and (max, sum) pairs [seqs, heads, splits]. */
export class AttentionWorkspace {
  private acc: GPUBuffer | null = null;
  private ml: GPUBuffer | null = null;
  private partials = 0;
  private headDim = 0;

  constructor(private readonly rt: GpuRuntime) {}

  /**
   * Buffers for `partials` (seq, head, split) entries, i.e. seqs * heads * splits. Growing submits
   * what is recorded first, since recorded dispatches may still use the old buffers; reserve the
   * largest need up front (maxSeqs * heads * maxSplits) to keep every step in one submission.
   */
  reserve(partials: number, headDim: number): { acc: GPUBuffer; ml: GPUBuffer } {
    if (!this.acc || !this.ml || partials > this.partials || headDim > this.headDim) {
      this.rt.submit();
      this.destroy();
      this.partials = Math.max(partials, this.partials * 2, 1024);
      this.headDim = Math.max(headDim, this.headDim);
      this.acc = this.rt.buffers.create('attention.partAcc', this.partials * this.headDim * 4);
      this.ml = this.rt.buffers.create('attention.partMl', this.partials * 8);
    }
    return { acc: this.acc, ml: this.ml };
  }

  destroy(): void {
    for (const b of [this.acc, this.ml]) {
      if (!b) continue;
      this.rt.forget(b);
      this.rt.buffers.destroy(b);
    }
    this.acc = this.ml = null;
    this.partials = this.headDim = 0;
  }
}

const workspaces = new WeakMap<GpuRuntime, AttentionWorkspace>();

function defaultWorkspace(rt: GpuRuntime): AttentionWorkspace {
  let ws = workspaces.get(rt);
  if (!ws) workspaces.set(rt, (ws = new AttentionWorkspace(rt)));
  return ws;
}

/** Compile-time shape of one attention pipeline (the shader's defines). */
interface KernelShape {
  tokens: number;
  group: number;
  tpr: number;
  bk: number;
}

function largestPow2Divisor(n: number, cap: number): number {
  let p = 1;
  while (p * 2 <= cap && n % (p * 2) === 0) p *= 2;
  return p;
}

function floorPow2(n: number): number {
  return 2 ** Math.floor(Math.log2(Math.max(1, n)));
}

/** llama.cpp's tiled prompt attention works in tiles of this many keys (attention.wgsl LLAMA_KV_TILE). */
const LLAMA_KV_TILE = 64;

function scoreKeys(bk: number, f16Accumulate: boolean): number {
  return f16Accumulate ? Math.max(bk, LLAMA_KV_TILE) : bk;
}

function workgroupBytes(rows: number, bk: number, headDim: number, f16Accumulate: boolean): number {
  return 4 * (rows * headDim + 2 * bk * headDim + rows * scoreKeys(bk, f16Accumulate) + rows) + 32;
}

function kernelShape(rt: GpuRuntime, headDim: number, group: number, tokens: number, threadsTarget: number, bkMax: number, f16Accumulate: boolean): KernelShape {
  const rows = tokens * group;
  const limits = rt.gpu.limits;
  if (rows > limits.maxComputeInvocationsPerWorkgroup) throw new Error(`attention: ${group} query heads per kv head is more than one workgroup`);
  const threads = Math.min(Math.max(1, Math.floor(threadsTarget / rows)), Math.floor(limits.maxComputeInvocationsPerWorkgroup / rows));
  const tpr = largestPow2Divisor(headDim, threads);
  let bk = bkMax;
  while (bk > 1 && workgroupBytes(rows, bk, headDim, f16Accumulate) > limits.maxComputeWorkgroupStorageSize) bk /= 2;
  if (workgroupBytes(rows, bk, headDim, f16Accumulate) > limits.maxComputeWorkgroupStorageSize) {
    throw new Error(`attention: headDim ${headDim} with ${rows} rows does not fit in workgroup memory`);
  }
  return { tokens, group, tpr, bk };
}

// On a CPU adapter, fewer threads per query row (see GpuRuntime.softwareShapes).
function tiledShape(rt: GpuRuntime, headDim: number, group: number, f16Accumulate: boolean): KernelShape {
  return kernelShape(rt, headDim, group, Math.max(1, Math.floor(16 / group)), rt.softwareShapes ? 16 : 128, 32, f16Accumulate);
}

function splitShape(rt: GpuRuntime, headDim: number, group: number, splitKeys: number, f16Accumulate: boolean): KernelShape {
  return kernelShape(rt, headDim, group, 1, rt.softwareShapes ? 8 : 64, floorPow2(Math.min(64, splitKeys)), f16Accumulate);
}

/** Splits of whole key tiles covering maxContext keys: only the last one is partly empty. */
function splitPlan(maxContext: number, splitKeys: number, maxSplits: number, bk: number): { numSplits: number; splitLen: number } {
  const roundUp = (n: number) => Math.ceil(n / bk) * bk;
  let splitLen = roundUp(Math.max(1, splitKeys));
  let numSplits = Math.ceil(maxContext / splitLen);
  if (numSplits > maxSplits) {
    splitLen = roundUp(Math.ceil(maxContext / maxSplits));
    numSplits = Math.ceil(maxContext / splitLen);
  }
  return { numSplits, splitLen };
}

function fastDefines(shape: KernelShape, layout: KvLayout): Record<string, string | number> {
  return {
    HEAD_DIM: layout.headDim, GROUP: shape.group, TOKENS: shape.tokens, TPR: shape.tpr, BK: shape.bk,
    KV_F16: String(layout.format === 'f16'), KV_QUANT: kvQuantBits(layout.format),
  };
}

function defines(shape: KernelShape, layout: KvLayout, f16Accumulate: boolean): Record<string, string | number> {
  return {
    HEAD_DIM: layout.headDim,
    GROUP: shape.group,
    TOKENS: shape.tokens,
    TPR: shape.tpr,
    BK: shape.bk,
    KV_F16: String(layout.format === 'f16'),
    F16_ACC: String(f16Accumulate),
    SCORE_KEYS: scoreKeys(shape.bk, f16Accumulate),
  };
}

interface Common {
  skipSingles: boolean;
  numSplits: number;
  splitLen: number;
}

function attentionParams(a: AttentionArgs, c: Common): Uint32Array {
  return packParams([
    { u32: a.tokens }, { u32: a.seqs }, { u32: a.layout.numKvHeads }, { u32: a.layout.pageSize },
    { u32: a.maxBlocksPerSeq }, { f32: 1 / Math.sqrt(a.layout.headDim) }, { u32: c.skipSingles ? 1 : 0 }, { u32: c.numSplits },
    { u32: c.splitLen }, { u32: a.heads },
  ]);
}

/** Records attention of every token of the batch over its sequence's cached keys 0..position. */
export function attention(rt: GpuRuntime, a: AttentionArgs): void {
  checkKvLayout(a.layout);
  if (a.heads % a.layout.numKvHeads !== 0) throw new Error(`attention: ${a.heads} heads is not a multiple of ${a.layout.numKvHeads} kv heads`);
  if (a.tokens === 0) return;
  const group = a.heads / a.layout.numKvHeads;
  const anyMulti = a.tokens > a.seqs;
  const useSplit = (a.path ?? 'auto') === 'auto';
  if ((a.numerics ?? 'fast') === 'fast') {
    if (a.f16Accumulate) throw new Error('attention: f16Accumulate belongs to the llama.cpp kernel set');
    recordFast(rt, a, group, anyMulti, useSplit);
    return;
  }
  if (isQuantizedKv(a.layout.format)) {
    throw new Error(`attention: the llama.cpp kernel set reads f32 and f16 KV caches only, not ${a.layout.format} (use numerics 'fast')`);
  }
  if (anyMulti || !useSplit) recordTiled(rt, a, group, useSplit);
  if (useSplit) recordSplit(rt, a, group);
}

/** The fast set's tiled and split shapes: one key tile (BK) for both, as the shared order needs. */
function fastShapes(rt: GpuRuntime, headDim: number, group: number, chunkKeys: number): { tiled: KernelShape; split: KernelShape } {
  const tiled = tiledShape(rt, headDim, group, false);
  const bk = Math.min(tiled.bk, chunkKeys);
  const split = kernelShape(rt, headDim, group, 1, rt.softwareShapes ? 8 : 64, bk, false);
  if (split.bk !== bk) throw new Error(`attention: no common key tile for headDim ${headDim}`);
  return { tiled: { ...tiled, bk }, split };
}

function recordFast(rt: GpuRuntime, a: AttentionArgs, group: number, anyMulti: boolean, useSplit: boolean): void {
  const chunkKeys = a.chunkKeys ?? DEFAULT_CHUNK_KEYS;
  if (!Number.isInteger(Math.log2(chunkKeys))) throw new Error(`attention: chunkKeys ${chunkKeys} is not a power of 2`);
  const shapes = fastShapes(rt, a.layout.headDim, group, chunkKeys);
  const bindings = [a.q, a.kCache, a.vCache, a.batch.positions, a.batch.seqStarts, a.batch.blockTables, a.out];
  if (anyMulti || !useSplit) {
    const shape = shapes.tiled;
    const maxQueryLen = a.maxQueryLen ?? a.tokens;
    const tiles = Math.min(Math.ceil(a.tokens / shape.tokens) + a.seqs, a.seqs * Math.ceil(maxQueryLen / shape.tokens));
    const params = attentionParams(a, { skipSingles: useSplit, numSplits: 1, splitLen: chunkKeys });
    rt.dispatch({ shader: 'attention', entryPoint: 'attn_tiled', defines: fastDefines(shape, a.layout) }, params, bindings, [tiles, a.layout.numKvHeads]);
  }
  if (!useSplit) return;
  const numSplits = Math.max(1, Math.ceil(a.maxContext / chunkKeys));
  const part = (a.workspace ?? defaultWorkspace(rt)).reserve(attentionPartials(a.seqs, a.heads, a.maxContext, chunkKeys), a.layout.headDim);
  const params = attentionParams(a, { skipSingles: true, numSplits, splitLen: chunkKeys });
  const key = { shader: 'attention', defines: fastDefines(shapes.split, a.layout) };
  rt.dispatch({ ...key, entryPoint: 'attn_split' }, params, [...bindings, part.acc, part.ml], [numSplits, a.layout.numKvHeads, a.seqs]);
  if (numSplits > 1) {
    rt.dispatch({ ...key, entryPoint: 'attn_reduce' }, params, [a.batch.seqStarts, a.out, part.acc, part.ml, a.batch.positions], [a.heads, a.seqs]);
  }
}

function recordTiled(rt: GpuRuntime, a: AttentionArgs, group: number, skipSingles: boolean): void {
  const shape = tiledShape(rt, a.layout.headDim, group, a.f16Accumulate ?? false);
  const maxQueryLen = a.maxQueryLen ?? a.tokens;
  const tiles = Math.min(Math.ceil(a.tokens / shape.tokens) + a.seqs, a.seqs * Math.ceil(maxQueryLen / shape.tokens));
  const params = attentionParams(a, { skipSingles, numSplits: 1, splitLen: 0 });
  rt.dispatch({ shader: 'attention_llama', entryPoint: 'attn_tiled', defines: defines(shape, a.layout, a.f16Accumulate ?? false) }, params,
    [a.q, a.kCache, a.vCache, a.batch.positions, a.batch.seqStarts, a.batch.blockTables, a.out],
    [tiles, a.layout.numKvHeads]);
}

function recordSplit(rt: GpuRuntime, a: AttentionArgs, group: number): void {
  const splitKeys = a.splitKeys ?? DEFAULT_SPLIT_KEYS;
  const shape = splitShape(rt, a.layout.headDim, group, splitKeys, a.f16Accumulate ?? false);
  const { numSplits, splitLen } = splitPlan(Math.max(1, a.maxContext), splitKeys, Math.max(1, a.maxSplits ?? DEFAULT_MAX_SPLITS), shape.bk);
  const part = (a.workspace ?? defaultWorkspace(rt)).reserve(a.seqs * a.heads * numSplits, a.layout.headDim);
  const params = attentionParams(a, { skipSingles: true, numSplits, splitLen });
  const key = { shader: 'attention_llama', defines: defines(shape, a.layout, a.f16Accumulate ?? false) };
  rt.dispatch({ ...key, entryPoint: 'attn_split' }, params,
    [a.q, a.kCache, a.vCache, a.batch.positions, a.batch.seqStarts, a.batch.blockTables, a.out, part.acc, part.ml],
    [numSplits, a.layout.numKvHeads, a.seqs]);
  if (numSplits > 1) {
    rt.dispatch({ ...key, entryPoint: 'attn_reduce' }, params, [a.batch.seqStarts, a.out, part.acc, part.ml], [a.heads, a.seqs]);
  }
}
