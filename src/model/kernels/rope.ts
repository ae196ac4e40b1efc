// Rotary position embedding in place, angles read from a RopeTable: shaders/rope.wgsl (fast set),
// rope_llama.wgsl (llama.cpp set).
import type { Binding, GpuRuntime } from '../../gpu/index.js';
import { grid, packParams, type KernelNumerics } from './common.js';

/** 'norm': llama.cpp NORM mode, adjacent pairs (x[2i], x[2i+1]); 'neox': pairs (x[i], x[i + ropeDim/2]). */
export type RopeMode = 'norm' | 'neox';

export interface RopeArgs {
  /** f32 [tokens, heads * headDim], rotated in place. */
  x: Binding;
  /** i32 [tokens]: the batch's positions. */
  positions: Binding;
  /** vec2<f32> [positions, ropeDim / 2]: (cos, sin) of each position's pairs (rope-table.ts), covering every position of the batch. */
  cosSin: Binding;
  tokens: number;
  heads: number;
  headDim: number;
  /** Leading dims of each head that rotate (llama.rope.dimension_count); even, at most headDim. */
  ropeDim: number;
  mode: RopeMode;
}

export function rope(rt: GpuRuntime, args: RopeArgs, numerics: KernelNumerics = 'fast'): void {
  const { tokens, heads, headDim, ropeDim, mode } = args;
  if (ropeDim % 2 !== 0 || ropeDim > headDim || ropeDim <= 0) throw new Error(`rope: ropeDim ${ropeDim} must be even and in 1..${headDim}`);
  const params = packParams([{ u32: tokens }, { u32: heads }, { u32: headDim }, { u32: ropeDim }, { u32: mode === 'neox' ? 1 : 0 }]);
  rt.dispatch({ shader: numerics === 'fast' ? 'rope' : 'rope_llama', entryPoint: 'rope' }, params, [args.x, args.positions, args.cosSin], grid((tokens * heads * ropeDim) / 2, 256));
}
