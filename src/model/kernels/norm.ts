// RMSNorm, plain and fused with the residual add: shaders/norm.wgsl (fast set), norm_llama.wgsl
// (llama.cpp set).
import type { Binding, GpuRuntime } from '../../gpu/index.js';
import { grid, packParams, reductionThreads, type KernelNumerics } from './common.js';

function normShader(numerics: KernelNumerics): string {
  return numerics === 'fast' ? 'norm' : 'norm_llama';
}

function normParams(rows: number, dim: number, eps: number): Uint32Array {
  return packParams([{ u32: rows }, { u32: dim }, { f32: eps }]);
}

/** out = x / sqrt(mean(x^2) + eps) * weight, per row of x f32 [rows, dim]; weight f32 [dim]. out must not be x. */
export function rmsNorm(rt: GpuRuntime, x: Binding, weight: Binding, out: Binding, rows: number, dim: number, eps: number,
  numerics: KernelNumerics = 'fast'): void {
  if (x === out) throw new Error('rmsNorm: out must be a different buffer from x');
  rt.dispatch({ shader: normShader(numerics), entryPoint: 'rms_norm', defines: { WG: reductionThreads(rt) } }, normParams(rows, dim, eps), [x, weight, out], grid(rows));
}

/** residual += delta, then out = rmsNorm(residual) * weight (all f32 [rows, dim], weight [dim]). */
export function rmsNormAdd(rt: GpuRuntime, residual: Binding, delta: Binding, weight: Binding, out: Binding,
  rows: number, dim: number, eps: number, numerics: KernelNumerics = 'fast'): void {
  rt.dispatch({ shader: normShader(numerics), entryPoint: 'rms_norm_add', defines: { WG: reductionThreads(rt) } }, normParams(rows, dim, eps), [residual, delta, weight, out], grid(rows));
}
