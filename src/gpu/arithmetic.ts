// What the device's f32 arithmetic does where WGSL leaves it open, found by running it: whether
// fma() rounds once (fused), and whether the compiler fuses a plain a * b + c. The exact kernels
// (shaders/exact.wgsl) use the hardware fma when it is fused and emulate it otherwise.
import type { GpuRuntime } from './runtime.js';

export interface Arithmetic {
  /** fma(a, b, c) rounds once. */
  fusedFma: boolean;
  /** a * b + c is computed with one rounding too (contracted): kernels that reproduce a CPU's
   * separate multiply and add then differ from it in last bits. */
  contractsMulAdd: boolean;
}

// a * b = 1 + 2^-11 + 2^-24 exactly; rounded, the 2^-24 is a tie that goes to the even 1 + 2^-11.
// Fused, a * b + c = 2^-24; rounded first, it is 0.
const A = 1 + 2 ** -12;
const C = -(1 + 2 ** -11);

export async function probeArithmetic(rt: GpuRuntime): Promise<Arithmetic> {
  const io = rt.buffers.createWith('probe.fma', new Float32Array([A, A, C, 0, 0]));
  try {
    rt.dispatch({ shader: 'probe', entryPoint: 'probe_fma' }, null, [io], [1]);
    rt.submit();
    const [fused, plain] = await rt.buffers.readF32(io, 12, 2);
    return { fusedFma: fused !== 0, contractsMulAdd: plain !== 0 };
  } finally {
    rt.forget(io);
    rt.buffers.destroy(io);
  }
}
