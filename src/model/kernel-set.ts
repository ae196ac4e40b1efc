// The two kernel sets behind one interface, chosen once by the ForwardPass (docs/DESIGN.md,
// Kernels). 'fast' (default): weights read once per step for every row, each output reduced in
// one order that no batch shape changes, so a sequence's logits are bit-identical whatever else
// is in the step, however its prompt was chunked, and whether its prefix came from the cache.
// 'llama.cpp': llama.cpp's x86 CPU arithmetic bit for bit (tools/llamacpp-dump checks every
// tensor), for parity tests; its per-row bookkeeping (row places) lives here, not in the Batch.
import type { Binding, GpuRuntime } from '../gpu/index.js';
import type { Batch } from './batch.js';
import { attention, type AttentionArgs } from './kernels/attention.js';
import { swiglu } from './kernels/elementwise.js';
import { writeKv, type KvLayout } from './kernels/kv.js';
import { matmulShared, type MatmulTarget } from './kernels/matmul.js';
import { rmsNorm } from './kernels/norm.js';
import { rope, type RopeArgs } from './kernels/rope.js';
import { LlamaRowPlaces } from './llama-row-places.js';

export type Numerics = 'fast' | 'llama.cpp';

export type KernelAttentionArgs = Omit<AttentionArgs, 'numerics' | 'f16Accumulate' | 'splitKeys' | 'maxSplits'>;

export interface KernelSet {
  readonly numerics: Numerics;
  /** Called with each step's Batch before anything of the step is recorded. */
  beginStep(batch: Batch): void;
  /**
   * y = (y +) x·Wᵀ for each target, x f32 [m, K]. `rowsAlone`: every row is the one new token of
   * its sequence (the sampled rows' output projection).
   */
  matmul(x: Binding, m: number, targets: MatmulTarget[], rowsAlone?: boolean): void;
  attention(args: KernelAttentionArgs): void;
  rmsNorm(x: Binding, weight: Binding, out: Binding, rows: number, dim: number, eps: number): void;
  rope(args: RopeArgs): void;
  swiglu(gate: Binding, up: Binding, out: Binding, n: number): void;
  writeKv(layout: KvLayout, k: Binding, v: Binding, slotMapping: Binding, kCache: Binding, vCache: Binding, tokens: number): void;
  destroy(): void;
}

/**
 * The per-row and per-element kernels, each set with its own arithmetic (plain f32, or
 * llama.cpp's): their order is per row, so no batch changes it. The KV write is shared.
 */
abstract class RowKernels {
  abstract readonly numerics: Numerics;

  constructor(protected readonly rt: GpuRuntime) {}

  rmsNorm(x: Binding, weight: Binding, out: Binding, rows: number, dim: number, eps: number): void {
    rmsNorm(this.rt, x, weight, out, rows, dim, eps, this.numerics);
  }

  rope(args: RopeArgs): void {
    rope(this.rt, args, this.numerics);
  }

  swiglu(gate: Binding, up: Binding, out: Binding, n: number): void {
    swiglu(this.rt, gate, up, out, n, this.numerics);
  }

  writeKv(layout: KvLayout, k: Binding, v: Binding, slotMapping: Binding, kCache: Binding, vCache: Binding, tokens: number): void {
    writeKv(this.rt, layout, k, v, slotMapping, kCache, vCache, tokens);
  }
}

export class FastKernels extends RowKernels implements KernelSet {
  readonly numerics = 'fast';

  /** chunkKeys: the attention chunk, fixed for the model's life (kernels/attention.ts chunkKeysFor). */
  constructor(rt: GpuRuntime, private readonly chunkKeys: number) {
    super(rt);
  }

  beginStep(): void {}

  matmul(x: Binding, m: number, targets: MatmulTarget[]): void {
    matmulShared(this.rt, x, m, targets, { numerics: 'fast' });
  }

  attention(args: KernelAttentionArgs): void {
    attention(this.rt, { ...args, numerics: 'fast', chunkKeys: this.chunkKeys });
  }

  destroy(): void {}
}

export class LlamaCppKernels extends RowKernels implements KernelSet {
  readonly numerics = 'llama.cpp';
  private readonly places: LlamaRowPlaces;
  private rowPlaces: GPUBuffer | null = null;

  constructor(rt: GpuRuntime) {
    super(rt);
    this.places = new LlamaRowPlaces(rt);
  }

  beginStep(batch: Batch): void {
    this.rowPlaces = this.places.upload(batch);
  }

  matmul(x: Binding, m: number, targets: MatmulTarget[], rowsAlone = false): void {
    if (!rowsAlone && !this.rowPlaces) throw new Error('llama.cpp kernels: matmul before beginStep');
    matmulShared(this.rt, x, m, targets, { numerics: 'llama.cpp', rowPlaces: rowsAlone ? 'alone' : this.rowPlaces! });
  }

  attention(args: KernelAttentionArgs): void {
    // llama.cpp's flash attention with an f16 cache keeps an f16 accumulator; with f32, plain f32.
    attention(this.rt, { ...args, numerics: 'llama.cpp', f16Accumulate: args.layout.format === 'f16' });
  }

  destroy(): void {
    this.places.destroy();
  }
}

/** chunkKeys: the fast set's attention chunk (kernels/attention.ts chunkKeysFor). */
export function createKernelSet(rt: GpuRuntime, numerics: Numerics, chunkKeys: number): KernelSet {
  return numerics === 'fast' ? new FastKernels(rt, chunkKeys) : new LlamaCppKernels(rt);
}
