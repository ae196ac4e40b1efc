// Elementwise kernels (shaders/elementwise.wgsl): residual add, scale, SwiGLU, row gather; the
// llama.cpp set's SwiGLU is shaders/swiglu_llama.wgsl.
import type { Binding, GpuRuntime } from '../../gpu/index.js';
import { grid, packParams, type KernelNumerics } from './common.js';

function run(rt: GpuRuntime, entryPoint: string, n: number, bindings: Binding[], cols = 0, factor = 0, shader = 'elementwise'): void {
  const params = packParams([{ u32: n }, { u32: cols }, { f32: factor }]);
  rt.dispatch({ shader, entryPoint }, params, bindings, grid(n, 256));
}

function swigluShader(numerics: KernelNumerics): string {
  return numerics === 'fast' ? 'elementwise' : 'swiglu_llama';
}

/** out = a + b over n f32 values; out may be a (in place). */
export function add(rt: GpuRuntime, a: Binding, b: Binding, out: Binding, n: number): void {
  if (out === a) run(rt, 'add_inplace', n, [a, b]);
  else run(rt, 'add', n, [a, b, out]);
}

/** out = x * factor over n f32 values; out may be x (in place). */
export function scale(rt: GpuRuntime, x: Binding, out: Binding, n: number, factor: number): void {
  if (out === x) run(rt, 'scale_inplace', n, [x], 0, factor);
  else run(rt, 'scale', n, [x, out], 0, factor);
}

/** out = silu(gate) * up over n f32 values, gate and up in separate buffers. */
export function swiglu(rt: GpuRuntime, gate: Binding, up: Binding, out: Binding, n: number, numerics: KernelNumerics = 'fast'): void {
  run(rt, 'swiglu', n, [gate, up, out], 0, 0, swigluShader(numerics));
}

/** SwiGLU of a fused projection: gateUp f32 [rows, 2 * ffnDim], each row [gate | up]; out f32 [rows, ffnDim]. */
export function swigluFused(rt: GpuRuntime, gateUp: Binding, out: Binding, rows: number, ffnDim: number, numerics: KernelNumerics = 'fast'): void {
  run(rt, 'swiglu_fused', rows * ffnDim, [gateUp, out], ffnDim, 0, swigluShader(numerics));
}

/** out[i] = x[rowIds[i]] for i < count: x f32 [*, dim], rowIds i32 [count] (the sample rows), out f32 [count, dim]. */
export function gatherRows(rt: GpuRuntime, x: Binding, rowIds: Binding, out: Binding, count: number, dim: number): void {
  run(rt, 'gather_rows', count * dim, [x, rowIds, out], dim);
}
