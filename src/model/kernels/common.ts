// Helpers shared by the kernel wrappers and their CPU references.
import type { GpuRuntime } from '../../gpu/index.js';
import { f16ToF32, f32ToF16 } from '../quant.js';

/** Threads of a one-workgroup-per-row reduction: a GPU's `gpuThreads`, or 8 on a CPU adapter. */
export function reductionThreads(rt: GpuRuntime, gpuThreads = 256): number {
  return rt.softwareShapes ? 8 : gpuThreads;
}

const MAX_GROUPS_PER_DIM = 65535;

/** Workgroups for `items` items at `perGroup` items each, folded into 2D (the shaders use wid.y * nwg.x + wid.x). */
export function grid(items: number, perGroup = 1): [number, number] {
  const groups = Math.ceil(items / perGroup);
  if (groups === 0) return [0, 1];
  const x = Math.min(groups, MAX_GROUPS_PER_DIM);
  return [x, Math.ceil(groups / x)];
}

/** Uniform params of four-byte fields (u32 or f32), padded to a 16-byte multiple. */
export function packParams(fields: Array<{ u32: number } | { f32: number }>): Uint32Array {
  const words = new Uint32Array(Math.ceil(fields.length / 4) * 4);
  const floats = new Float32Array(words.buffer);
  fields.forEach((f, i) => {
    if ('u32' in f) words[i] = f.u32 >>> 0;
    else floats[i] = f.f32;
  });
  return words;
}

/** IEEE binary16 conversions live in quant.ts (GGUF blocks need them too). */
export { f32ToF16 as f32ToF16Bits, f16ToF32 as f16BitsToF32 } from '../quant.js';

export function roundToF16(x: number): number {
  return f16ToF32(f32ToF16(x));
}

/**
 * Which kernel set a per-row kernel (RMSNorm, RoPE, SwiGLU) belongs to: 'fast' computes in plain
 * f32 (batch invariant: per row, in an order no batch changes); 'llama.cpp' reproduces llama.cpp's
 * x86 arithmetic bit for bit (shaders/*_llama.wgsl).
 */
export type KernelNumerics = 'fast' | 'llama.cpp';
