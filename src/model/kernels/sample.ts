// Greedy token choice on the GPU (shaders/sample.wgsl).
import type { Binding, GpuRuntime } from '../../gpu/index.js';
import { grid, packParams, reductionThreads } from './common.js';

/** out[r] = index of the largest of logits[r, 0..vocab) (f32 [rows, vocab]; i32 out), ties to the lowest index. */
export function argmax(rt: GpuRuntime, logits: Binding, out: Binding, rows: number, vocab: number): void {
  rt.dispatch({ shader: 'sample', entryPoint: 'argmax', defines: { WG: reductionThreads(rt) } }, packParams([{ u32: rows }, { u32: vocab }]), [logits, out], grid(rows));
}
