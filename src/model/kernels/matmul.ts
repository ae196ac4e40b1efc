// Matmul against GGUF weights kept quantized in GPU memory: y[m, n] (+)= sum_k x[m, k] W[n, k].
// Decode rows take the GEMV kernel, which reads each weight block once for all rows; prompt
// rows a tiled GEMM kernel (in the fast set: in the GEMV's order). See shaders/matmul.wgsl.
//
// Activations are first rounded the way llama.cpp's CPU matmul rounds them for the weight's type
// (Q8_0 blocks for Q8_0/Q4_0, Q8_K blocks for Q4_K/Q6_K, f16 for F16, bf16 for BF16; F32 exact),
// into a scratch buffer this module owns (shaders/quantize_act.wgsl), so the model computes what
// llama.cpp computes. `activations: 'exact'` skips that.
// Q8_0 and Q4_0 weights go further, as llama.cpp's vec_dot does: the activations are quantized to
// int8 Q8_0 blocks (quantize_act.wgsl quant_q8_0) and shaders/matmul_q8.wgsl sums each block's
// products exactly in i32 before scaling (CPU reference: matmul.reference.ts).
import type { Binding, GpuRuntime, PipelineKey } from '../../gpu/index.js';
import { GgmlType, ggmlTypeName } from '../gguf.js';
import {
  UnsupportedTensorTypeError,
  activationGrid,
  activationGridBlock,
  gpuBytesPerRow,
  isSupportedType,
  repackForGpu,
  type ActivationGrid,
} from '../quant.js';

export interface GpuWeight {
  name: string;
  type: GgmlType;
  /** N: rows (ggml dims[1..] multiplied); 1 for a 1-D tensor such as a norm weight. */
  rows: number;
  /** K: elements per row (ggml dims[0]). */
  cols: number;
  buffer: GPUBuffer;
}

/** Batches of up to this many rows take the GEMV kernel; larger ones the tiled GEMM (fast set: on a GPU). */
export const GEMV_MAX_ROWS = 16;
/**
 * Threads per GEMV workgroup (GEMV_THREADS in gemv_reduce.wgsl): 64 on a GPU; on a CPU adapter
 * 8, so a small matrix still spreads over several workgroups (cores) and no workgroup carries
 * dozens of fibers.
 */
function gemvThreads(rt: GpuRuntime, split: number): number {
  return rt.softwareShapes ? Math.max(8, split) : 64;
}

/**
 * Weight rows per GEMV thread group (GEMV_COLS): 2 on a GPU; 8 on a CPU adapter, where reusing
 * each x block for more rows saves a third of the GEMV's time (measured on SwiftShader).
 */
function gemvCols(rt: GpuRuntime): number {
  return rt.softwareShapes ? 8 : 2;
}
const GEMM_TILE = 64; // TILE in matmul.wgsl
/** Output tile of the fast set's GEMMs (LANE_TM x rows by LANE_TN weight rows in lane_tree.wgsl). */
const LANE_GEMM_TM = 32;
const LANE_GEMM_TN = 64;
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
 * Threads sharing one weight row pair in the GEMV kernel. On a GPU: as many as have work along K
 * (each reads at least 4 vec4s of a float row, or a whole block of a quantized one: coalesced
 * reads, little reduction for small K). On a software adapter (SwiftShader) workgroup barriers
 * cost far more than uncoalesced reads, so one thread reads the whole row and there is no
 * reduction at all.
 */
export function defaultGemvSplit(rt: GpuRuntime, w: Pick<GpuWeight, 'type' | 'cols'>): GemvSplit {
  if (rt.softwareShapes) return 1;
  const lanesWithWork = integerPath(w) ? w.cols / 32 : kQuantGemv(w) ? w.cols / 256 : w.cols / 16;
  for (const split of [64, 16, 4] as const) if (lanesWithWork >= split) return split;
  return 1;
}

/** x rows per GEMV row tile: a pow-2 bucket up to GEMV_MAX_ROWS, so few pipelines serve every M. */
function gemvRows(m: number): number {
  return Math.min(GEMV_MAX_ROWS, 2 ** Math.ceil(Math.log2(m)));
}

/**
 * The two kernel sets (docs/DESIGN.md, Kernel sets). 'fast' (default): each output reduced in
 * one order that no batch shape changes (batch invariant), by the GEMV in row tiles (decode rows:
 * each weight block read once per tile for all its rows) or, for prompt rows on a GPU, the tiled
 * GEMM in the same order (lane_tree.wgsl); Q8_0 / Q4_0 weights multiply int8 Q8_0 activations
 * (one integer sum and one hardware fma per block), K-quants int8 Q8_K ones, float types f32.
 * 'llama.cpp': llama.cpp's x86 CPU arithmetic bit for bit (activations rounded onto
 * the weight type's grid, its kernel per call chosen from rowPlaces), for parity tests.
 */
export type MatmulNumerics = 'fast' | 'llama.cpp';

export interface MatmulOptions {
  /** y += x·Wᵀ instead of y = x·Wᵀ (fuses a residual add). */
  accumulate?: boolean;
  /** The kernel set; default 'fast'. */
  numerics?: MatmulNumerics;
  /**
   * Force a path instead of choosing by m and device (tests, benchmarks). In the llama.cpp set
   * GEMV needs m <= GEMV_MAX_ROWS; in the fast set both paths take any m and give the same bits,
   * each on its own kernels.
   */
  path?: 'gemv' | 'gemm';
  /**
   * How GEMV lanes are added (tests, benchmarks): 'subgroups' (default where the device has the
   * feature) or 'shared' (workgroup memory). The same additions, so the same bits.
   */
  gemvTree?: 'shared' | 'subgroups';
  /** GEMV threads per weight row pair (tests, benchmarks); default defaultGemvSplit. */
  gemvSplit?: GemvSplit;
  /** Fold the GEMV grid into 2D above this many workgroups (default and maximum 65535; tests). */
  maxGroupsPerDim?: number;
  /**
   * llama.cpp set: where each row would sit in a llama.cpp batch, for the kernels that reproduce
   * its choice of kernel per call (F32 / F16 weights: matmul_llama.wgsl rows_llama; Q4_K / Q6_K:
   * matmul_qk.wgsl): 'alone' (every row a one-token call), 'batch' (the m rows as one call), or a
   * buffer of u32 pairs [m] (index among its sequence's new tokens, their count; see
   * LlamaRowPlaces). Default 'batch'.
   */
  rowPlaces?: Binding | 'alone' | 'batch';
}

/** Q4_K / Q6_K weights: the fast set multiplies int8 Q8_K activations (matmul_qk_gemv.wgsl). */
function kQuantGemv(w: Pick<GpuWeight, 'type'>): boolean {
  return w.type === GgmlType.Q4_K || w.type === GgmlType.Q6_K;
}

/** Q8_0 / Q4_0 weights multiply int8 Q8_0 activations (matmul_q8.wgsl) in both sets. */
function integerPath(w: Pick<GpuWeight, 'type'>): boolean {
  return w.type === GgmlType.Q8_0 || w.type === GgmlType.Q4_0;
}

/**
 * Whether llama.cpp's x86 build multiplies by this weight through its repacked kernels: Q4_0 with
 * a multiple of 8 rows goes to ggml_gemv/gemm_q4_0_8x8_q8_0 (AVX2), which sum each block in one
 * int and one fmaf instead of 8 lanes (matmul_q8.wgsl REPACK).
 */
function repacked(w: Pick<GpuWeight, 'type' | 'rows'>): string {
  return String(w.type === GgmlType.Q4_0 && w.rows % 8 === 0);
}

/** Defines of the kernels that do not use the GEMV layout (GEMM, rows_llama): one x row, no split. */
function flatDefines(w: GpuWeight): Record<string, string | number> {
  return { WTYPE: wgslWeightType(w), ROWS: 1, SPLIT: 1, GEMV_THREADS: 64, GEMV_COLS: 2, LOG_SPLIT: 0, ONE_SUM: 'false', GEMV_TREE: 'shared' };
}

/**
 * K-quant weights whose llama.cpp-numerics matmul is the integer one (matmul_qk.wgsl): Q6_K, and
 * Q4_K with a multiple of 8 rows (llama.cpp's x86 repacked kernel; other Q4_K shapes take its
 * vec_dot, not reproduced: they keep the float path on Q8_K-rounded activations).
 */
function kQuantIntegerPath(w: Pick<GpuWeight, 'type' | 'rows'>): boolean {
  return w.type === GgmlType.Q6_K || (w.type === GgmlType.Q4_K && w.rows % 8 === 0);
}

/** Whether a llama.cpp-set matmul runs the row-order-exact float kernel (matmul_llama.wgsl rows_llama) unless a path is forced. */
function llamaFloatPath(w: Pick<GpuWeight, 'type'>): boolean {
  return w.type === GgmlType.F32 || w.type === GgmlType.F16;
}

/** matmul_io.wgsl params.places: 0 per row (rowPlaces buffer), 1 every row alone, 2 the rows as one batch. */
function placesMode(w: GpuWeight, places: MatmulOptions['rowPlaces']): number {
  // tinyBLAS takes only K % 8 == 0 and weight rows % 4 == 0; otherwise llama.cpp uses vec_dot for every row.
  if (llamaFloatPath(w) && (w.cols % 8 !== 0 || w.rows % 4 !== 0)) return 1;
  return places === 'alone' ? 1 : places === undefined || places === 'batch' ? 2 : 0;
}

export interface MatmulPlan {
  kernel: PipelineKey;
  /** Workgroups (x, y, z); z is the GEMV's row tile. */
  groups: [number, number, number];
  /** What x becomes before the kernel reads it: f32 as given, rounded onto a grid, or int8 blocks. */
  activations: ActivationGrid | 'q8_0 int' | 'q8_k int' | null;
}

/** Which kernel, defines, grid and activation format a matmul of m rows uses. */
export function planMatmul(rt: GpuRuntime, w: GpuWeight, m: number, opts: MatmulOptions = {}): MatmulPlan {
  return (opts.numerics ?? 'fast') === 'fast' ? planFast(rt, w, m, opts) : planLlama(rt, w, m, opts);
}

function planFast(rt: GpuRuntime, w: GpuWeight, m: number, opts: MatmulOptions): MatmulPlan {
  const gemv = gemvPlan(rt, w, m, opts);
  const path = opts.path ?? (m > GEMV_MAX_ROWS && !rt.softwareShapes ? 'gemm' : 'gemv');
  const gemmGroups: [number, number, number] = [Math.ceil(w.rows / LANE_GEMM_TN), Math.ceil(m / LANE_GEMM_TM), 1];
  if (kQuantGemv(w)) {
    const defines = { ...gemv.defines, QK_STAGED: String(path === 'gemm') };
    if (path === 'gemv') return { kernel: { shader: 'matmul_qk_gemv', entryPoint: 'gemv', defines }, groups: gemv.groups, activations: 'q8_k int' };
    // ROWS: x rows per GEMM thread (matmul_qk_gemv.wgsl gemm_lanes_qk).
    return { kernel: { shader: 'matmul_qk_gemv', entryPoint: 'gemm_lanes_qk', defines: { ...defines, ROWS: 2 } }, groups: gemmGroups, activations: 'q8_k int' };
  }
  const int = integerPath(w);
  // Hardware fma, one integer sum per block: the exact emulation of the llama.cpp set is compiled out.
  const defines = int ? { ...gemv.defines, REPACK: 'false', FUSED_FMA: 'true', ONE_SUM: 'true' } : gemv.defines;
  const shader = int ? 'matmul_q8' : 'matmul';
  const activations = int ? 'q8_0 int' : null;
  if (path === 'gemv') return { kernel: { shader, entryPoint: 'gemv', defines }, groups: gemv.groups, activations };
  return { kernel: { shader, entryPoint: int ? 'gemm_lanes_q8' : 'gemm_lanes', defines: { ...defines, ROWS: 1 } }, groups: gemmGroups, activations };
}

function planLlama(rt: GpuRuntime, w: GpuWeight, m: number, opts: MatmulOptions): MatmulPlan {
  const grid = activationGrid(w.type);
  if (kQuantIntegerPath(w) && !opts.path) {
    return { kernel: { shader: 'matmul_qk', entryPoint: 'rows_qk', defines: { WTYPE: wgslWeightType(w) } }, groups: [Math.ceil(w.rows / 64), m, 1], activations: 'q8_k int' };
  }
  if (llamaFloatPath(w) && !opts.path) {
    return { kernel: { shader: 'matmul_llama', entryPoint: 'rows_llama', defines: flatDefines(w) }, groups: [Math.ceil(w.rows / 64), m, 1], activations: grid };
  }
  const int = integerPath(w);
  const activations = int ? 'q8_0 int' : grid;
  if ((opts.path ?? (m <= GEMV_MAX_ROWS ? 'gemv' : 'gemm')) === 'gemm') {
    return {
      kernel: int
        ? { shader: 'matmul_q8', entryPoint: 'gemm_q8', defines: { ...flatDefines(w), REPACK: repacked(w) } }
        : { shader: 'matmul', entryPoint: 'gemm', defines: flatDefines(w) },
      groups: [Math.ceil(w.rows / GEMM_TILE), Math.ceil(m / GEMM_TILE), 1],
      activations,
    };
  }
  if (m > GEMV_MAX_ROWS) throw new Error(`${w.name}: the GEMV path takes at most ${GEMV_MAX_ROWS} rows, not ${m}`);
  const gemv = gemvPlan(rt, w, m, opts);
  const kernel = int
    ? { shader: 'matmul_q8', entryPoint: 'gemv', defines: { ...gemv.defines, REPACK: repacked(w), ONE_SUM: 'false' } }
    : { shader: 'matmul', entryPoint: 'gemv', defines: gemv.defines };
  return { kernel, groups: gemv.groups, activations };
}

/** GEMV defines and grid: weight row groups folded into (x, y), row tiles of ROWS along z. */
function gemvPlan(rt: GpuRuntime, w: GpuWeight, m: number, opts: MatmulOptions): { defines: Record<string, string | number>; groups: [number, number, number] } {
  const split = opts.gemvSplit ?? defaultGemvSplit(rt, w);
  if (!GEMV_SPLITS.includes(split)) throw new Error(`${w.name}: GEMV split ${split} is not one of ${GEMV_SPLITS.join(', ')}`);
  const threads = gemvThreads(rt, split);
  const cols = gemvCols(rt);
  const rows = gemvRows(m);
  const tree = opts.gemvTree ?? (rt.gpu.features.subgroups ? 'subgroups' : 'shared');
  if (tree === 'subgroups' && !rt.gpu.features.subgroups) throw new Error(`${w.name}: the subgroup GEMV tree needs the device's subgroups feature`);
  const defines = { WTYPE: wgslWeightType(w), ROWS: rows, SPLIT: split, GEMV_THREADS: threads, GEMV_COLS: cols, LOG_SPLIT: Math.log2(split), GEMV_TREE: tree };
  const [x, y] = grid2d(Math.ceil(w.rows / ((threads / split) * cols)), opts.maxGroupsPerDim);
  return { defines, groups: [x, y, Math.ceil(m / rows)] };
}

/**
 * Records y[m, n] = (y +) sum_k x'[m, k] * W[n, k] into the current submission, x' being x as the
 * kernel set reads it (MatmulPlan.activations). x: f32 [m, w.cols]; y: f32 [m, w.rows].
 */
export function matmul(rt: GpuRuntime, w: GpuWeight, x: Binding, y: Binding, m: number, opts: MatmulOptions = {}): void {
  matmulShared(rt, x, m, [{ w, y, accumulate: opts.accumulate }], opts);
}

export interface MatmulTarget {
  w: GpuWeight;
  y: Binding;
  /** y += x·Wᵀ */
  accumulate?: boolean;
}

/**
 * Several matmuls of the same x (q/k/v, gate/up), recorded in order: x is rounded or quantized
 * once per activation format rather than once per weight. Targets must share K (w.cols).
 */
export function matmulShared(rt: GpuRuntime, x: Binding, m: number, targets: MatmulTarget[], opts: Omit<MatmulOptions, 'accumulate'> = {}): void {
  const words = targets.map(({ w }) => weightWordsPerRow(w));
  if (m <= 0 || targets.length === 0) return;
  const k = targets[0].w.cols;
  for (const { w, y } of targets) {
    if (w.cols !== k) throw new Error(`${w.name}: K = ${w.cols}, but the matmuls sharing x have K = ${k}`);
    checkBinding(x, m * w.cols * 4, 'x', w.name);
    checkBinding(y, m * w.rows * 4, 'y', w.name);
  }
  let prepared: MatmulPlan['activations'] = null;
  let scratch: GPUBuffer | null = null;
  targets.forEach(({ w, y, accumulate }, i) => {
    const { kernel, groups, activations } = planMatmul(rt, w, m, opts);
    if (activations && activations !== prepared) {
      scratch = activationScratch(rt, m * k * 4);
      prepareActivations(rt, activations, x, scratch, m * k);
      prepared = activations;
    }
    const xIn = activations ? scratch! : x;
    const bindings = [w.buffer, xIn, y];
    let places = 0;
    if (kernel.entryPoint === 'rows_llama' || kernel.entryPoint === 'rows_qk') {
      places = placesMode(w, opts.rowPlaces);
      // rowPlaces is read only in mode 0; otherwise any read-only buffer fills the binding.
      bindings.push(places === 0 ? (opts.rowPlaces as Binding) : xIn);
    }
    const params = new Uint32Array([m, w.rows, w.cols / 4, words[i], accumulate ? 1 : 0, places, 0, 0]);
    rt.dispatch(kernel, params, bindings, groups);
  });
}

function prepareActivations(rt: GpuRuntime, format: NonNullable<MatmulPlan['activations']>, x: Binding, out: Binding, count: number): void {
  if (format === 'q8_0 int') quantizeActivationsQ8_0(rt, x, out, count);
  else if (format === 'q8_k int') quantizeActivationsQ8K(rt, x, out, count);
  else roundActivations(rt, format, x, out, count);
}

const ROUNDING_ENTRY: Record<ActivationGrid, string> = {
  q8_0: 'round_q8_0',
  q8_k: 'round_q8_k',
  f16: 'round_f16',
  bf16: 'round_bf16',
};

/**
 * Records out[0 .. count) = x rounded onto an activation grid (see shaders/quantize_act.wgsl;
 * CPU reference quantize.ts roundActivations). count: elements, a multiple of the grid's block
 * (32 for q8_0, 256 for q8_k, 4 for the float grids); x and out dense f32.
 */
export function roundActivations(rt: GpuRuntime, grid: ActivationGrid, x: Binding, out: Binding, count: number): void {
  const unit = Math.max(4, activationGridBlock(grid));
  if (count % unit !== 0) throw new Error(`activation rounding (${grid}): ${count} elements are not whole blocks of ${unit}`);
  checkBinding(x, count * 4, 'x', `activation rounding (${grid})`);
  checkBinding(out, count * 4, 'output', `activation rounding (${grid})`);
  const units = count / unit;
  if (units === 0) return;
  rt.dispatch({ shader: 'quantize_act', entryPoint: ROUNDING_ENTRY[grid], defines: {} }, new Uint32Array([units, 0, 0, 0]), [x, out], grid2d(Math.ceil(units / 64)));
}

/**
 * Records out = x quantized to Q8_K int8 blocks in the quantize_act.wgsl quant_q8_k layout (81
 * words per 256 elements: f32 d, 64 words of packed quants, 16 bsums). count: whole blocks of 256.
 */
export function quantizeActivationsQ8K(rt: GpuRuntime, x: Binding, out: Binding, count: number): void {
  if (count % 256 !== 0) throw new Error(`activation quantization (q8_k): ${count} elements are not whole blocks of 256`);
  checkBinding(x, count * 4, 'x', 'activation quantization (q8_k)');
  checkBinding(out, (count / 256) * 81 * 4, 'output', 'activation quantization (q8_k)');
  const units = count / 256;
  if (units === 0) return;
  rt.dispatch({ shader: 'quantize_act', entryPoint: 'quant_q8_k', defines: {} }, new Uint32Array([units, 0, 0, 0]), [x, out], grid2d(Math.ceil(units / 64)));
}

/** u32 words of Q8_0 int8 activation blocks (quantize_act.wgsl quant_q8_0) for `count` elements. */
export function q8ActivationWords(count: number): number {
  return (count / 32) * 9;
}

/**
 * Records out = x quantized to Q8_0 int8 blocks in the quantize_act.wgsl quant_q8_0 layout (9 words
 * per 32 elements: f32 scale, 8 words of packed quants). count: elements, whole blocks of 32.
 */
export function quantizeActivationsQ8_0(rt: GpuRuntime, x: Binding, out: Binding, count: number): void {
  if (count % 32 !== 0) throw new Error(`activation quantization (q8_0): ${count} elements are not whole blocks of 32`);
  checkBinding(x, count * 4, 'x', 'activation quantization (q8_0)');
  checkBinding(out, q8ActivationWords(count) * 4, 'output', 'activation quantization (q8_0)');
  const units = count / 32;
  if (units === 0) return;
  rt.dispatch({ shader: 'quantize_act', entryPoint: 'quant_q8_0', defines: {} }, new Uint32Array([units, 0, 0, 0]), [x, out], grid2d(Math.ceil(units / 64)));
}

/**
 * The buffer rounded activations go to: one per runtime, created at a power-of-two size and only
 * replaced when a call needs more (so not per call, and bind groups stay cached). Replacing it
 * first submits the dispatches already recorded, which may read the old one, then destroys it.
 */
class ActivationScratch {
  private buffer: GPUBuffer | null = null;

  constructor(private readonly rt: GpuRuntime) {}

  get(bytes: number): GPUBuffer {
    if (this.buffer && this.buffer.size >= bytes) return this.buffer;
    const limit = this.rt.gpu.limits.maxStorageBufferBindingSize;
    const size = Math.max(bytes, Math.min(limit, Math.max(65536, 2 ** Math.ceil(Math.log2(bytes)))));
    if (this.buffer) {
      this.rt.submit();
      this.rt.forget(this.buffer);
      this.rt.buffers.destroy(this.buffer);
    }
    this.buffer = this.rt.buffers.create('matmul.activations', size);
    return this.buffer;
  }
}

const scratches = new WeakMap<GpuRuntime, ActivationScratch>();

/**
 * Grows the activation scratch to `bytes` now: a forward pass calls it before recording a step,
 * so no matmul of the step has to grow it (which submits what is recorded so far).
 */
export function reserveActivationScratch(rt: GpuRuntime, bytes: number): void {
  activationScratch(rt, bytes);
}

function activationScratch(rt: GpuRuntime, bytes: number): GPUBuffer {
  let s = scratches.get(rt);
  if (!s) scratches.set(rt, (s = new ActivationScratch(rt)));
  return s.get(bytes);
}
