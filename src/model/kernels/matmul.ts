// Matmul against GGUF weights kept quantized in GPU memory: y[m, n] (+)= sum_k x[m, k] W[n, k].
// Small batches (decode) take the GEMV kernel, which reads each weight block once for all
// rows; larger ones the tiled GEMM kernel. See shaders/matmul.wgsl.
import type { Binding, GpuRuntime, PipelineKey } from '../../gpu/index.js';
import { GgmlType, ggmlTypeName } from '../gguf.js';
import { UnsupportedTensorTypeError, gpuBytesPerRow, isSupportedType, repackForGpu } from '../quant.js';

export interface GpuWeight {
  name: string;
  type: GgmlType;
  /** N: rows (ggml dims[1..] multiplied); 1 for a 1-D tensor such as a norm weight. */
  rows: number;
  /** K: elements per row (ggml dims[0]). */
  cols: number;
  buffer: GPUBuffer;
}

/** Batches of up to this many rows take the GEMV kernel; larger ones the tiled GEMM. */
export const GEMV_MAX_ROWS = 16;
const GEMV_THREADS = 64; // GEMV_THREADS in matmul.wgsl
const GEMV_COLS = 2; // GEMV_COLS in matmul.wgsl
const GEMM_TILE = 64; // TILE in matmul.wgsl
const MAX_GROUPS_PER_DIM = 65535;

const WGSL_TYPES: Partial<Record<GgmlType, string>> = {
  [GgmlType.F32]: 'f32',
  [GgmlType.F16]: 'f16',
  [GgmlType.BF16]: 'bf16',
  [GgmlType.Q8_0]: 'q8_0',
  [GgmlType.Q4_0]: 'q4_0',
  [GgmlType.Q4_K]: 'q4_k',
  [GgmlType.Q6_K]: 'q6_k',
};

/** The WTYPE define of dequant.wgsl for a weight. */
export function wgslWeightType(w: Pick<GpuWeight, 'name' | 'type'>): string {
  const name = WGSL_TYPES[w.type];
  if (!name) throw new UnsupportedTensorTypeError(w.name, w.type);
  return name;
}

/** Repacks a tensor's GGUF bytes into the GPU block layout and uploads it (stays quantized). */
export function uploadWeight(rt: GpuRuntime, name: string, type: GgmlType, dims: number[], bytes: Uint8Array): GpuWeight {
  if (!isSupportedType(type)) throw new UnsupportedTensorTypeError(name, type);
  const cols = dims[0];
  const rows = dims.slice(1).reduce((a, b) => a * b, 1);
  const packed = repackForGpu(type, bytes, rows, cols, name);
  return { name, type, rows, cols, buffer: rt.buffers.createWith(name, packed) };
}

/** u32 words per weight row in GPU memory; the kernels need whole vec4s of K. */
export function weightWordsPerRow(w: GpuWeight): number {
  if (w.cols % 4 !== 0) {
    throw new Error(`tensor ${w.name} (${ggmlTypeName(w.type)}): row length ${w.cols} is not a multiple of 4, which the GPU kernels need`);
  }
  return gpuBytesPerRow(w.type, w.cols, w.name) / 4;
}

/** A 2D grid covering `total` workgroups within the per-dimension limit. */
export function grid2d(total: number, maxPerDim = MAX_GROUPS_PER_DIM): [number, number] {
  const x = Math.max(1, Math.min(total, maxPerDim));
  return [x, Math.ceil(total / x)];
}

/** Fails early, naming the weight, when a buffer binding is too small for the call. */
export function checkBinding(b: Binding, bytes: number, what: string, tensor: string): void {
  if (b.size < bytes) throw new Error(`${tensor}: ${what} binding of ${b.size} bytes is smaller than the ${bytes} bytes needed`);
}

const GEMV_SPLITS = [1, 2, 4, 8, 16, 32, 64] as const;
export type GemvSplit = (typeof GEMV_SPLITS)[number];

/**
 * Threads sharing one weight row pair in the GEMV kernel. On a GPU: enough that each reads at
 * least 4 vec4s of the row (coalesced reads along K, little reduction for small K). On a
 * software adapter (SwiftShader) workgroup barriers cost far more than uncoalesced reads, so
 * one thread reads the whole row and there is no reduction at all.
 */
export function defaultGemvSplit(rt: GpuRuntime, k4: number): GemvSplit {
  if (rt.gpu.adapter.isSoftware) return 1;
  for (const split of [64, 16, 4] as const) if (k4 >= split * 4) return split;
  return 1;
}

/** Pow-2 row bucket of the GEMV kernel, so few pipelines serve every batch size. */
function gemvRows(m: number): number {
  return 2 ** Math.ceil(Math.log2(m));
}

export interface MatmulOptions {
  /** y += x·Wᵀ instead of y = x·Wᵀ (fuses a residual add). */
  accumulate?: boolean;
  /** Force a path instead of choosing by m (tests, benchmarks). GEMV needs m <= GEMV_MAX_ROWS. */
  path?: 'gemv' | 'gemm';
  /** GEMV threads per weight row pair (tests, benchmarks); default defaultGemvSplit. */
  gemvSplit?: GemvSplit;
  /**
   * GEMV reduction by subgroup operations (used when the split is 64); default: when the device
   * has the `subgroups` feature. False forces the workgroup-memory reduction.
   */
  subgroups?: boolean;
  /** Fold the GEMV grid into 2D above this many workgroups (default and maximum 65535; tests). */
  maxGroupsPerDim?: number;
}

export interface MatmulPlan {
  kernel: PipelineKey;
  groups: [number, number];
}

/** Which kernel, defines and grid a matmul of m rows uses (GEMV up to GEMV_MAX_ROWS rows). */
export function planMatmul(rt: GpuRuntime, w: GpuWeight, m: number, opts: MatmulOptions = {}): MatmulPlan {
  const gemv = (opts.path ?? (m <= GEMV_MAX_ROWS ? 'gemv' : 'gemm')) === 'gemv';
  if (!gemv) {
    return {
      kernel: { shader: 'matmul', entryPoint: 'gemm', defines: { WTYPE: wgslWeightType(w), ROWS: 1, SPLIT: 1 } },
      groups: [Math.ceil(w.rows / GEMM_TILE), Math.ceil(m / GEMM_TILE)],
    };
  }
  if (m > GEMV_MAX_ROWS) throw new Error(`${w.name}: the GEMV path takes at most ${GEMV_MAX_ROWS} rows, not ${m}`);
  const split = opts.gemvSplit ?? defaultGemvSplit(rt, w.cols / 4);
  if (!GEMV_SPLITS.includes(split)) throw new Error(`${w.name}: GEMV split ${split} is not one of ${GEMV_SPLITS.join(', ')}`);
  const subgroups = split === 64 && (opts.subgroups ?? rt.gpu.features.subgroups);
  if (subgroups && !rt.gpu.features.subgroups) throw new Error(`${w.name}: subgroups requested but the device has no subgroups feature`);
  const defines = { WTYPE: wgslWeightType(w), ROWS: gemvRows(m), SPLIT: split };
  return {
    kernel: subgroups
      ? { shader: 'matmul_subgroups', entryPoint: 'gemv_subgroups', defines }
      : { shader: 'matmul', entryPoint: 'gemv', defines },
    groups: grid2d(Math.ceil(w.rows / ((GEMV_THREADS / split) * GEMV_COLS)), opts.maxGroupsPerDim),
  };
}

/**
 * Records y[m, n] = (y +) sum_k x[m, k] * W[n, k] into the current submission.
 * x: f32 [m, w.cols]; y: f32 [m, w.rows].
 */
export function matmul(rt: GpuRuntime, w: GpuWeight, x: Binding, y: Binding, m: number, opts: MatmulOptions = {}): void {
  const wordsPerRow = weightWordsPerRow(w);
  if (m <= 0) return;
  checkBinding(x, m * w.cols * 4, 'x', w.name);
  checkBinding(y, m * w.rows * 4, 'y', w.name);
  const { kernel, groups } = planMatmul(rt, w, m, opts);
  const params = new Uint32Array([m, w.rows, w.cols / 4, wordsPerRow, opts.accumulate ? 1 : 0, 0, 0, 0]);
  rt.dispatch(kernel, params, [w.buffer, x, y], groups);
}
