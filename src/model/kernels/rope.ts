// Rotary position embedding in place (shaders/rope.wgsl).
import type { Binding, GpuRuntime } from '../../gpu/index.js';
import { grid, packParams } from './common.js';

/** 'norm': llama.cpp NORM mode, adjacent pairs (x[2i], x[2i+1]); 'neox': pairs (x[i], x[i + ropeDim/2]). */
export type RopeMode = 'norm' | 'neox';

export interface RopeArgs {
  /** f32 [tokens, heads * headDim], rotated in place. */
  x: Binding;
  /** i32 [tokens]: the batch's positions. */
  positions: Binding;
  tokens: number;
  heads: number;
  headDim: number;
  /** Leading dims of each head that rotate (llama.rope.dimension_count); even, at most headDim. */
  ropeDim: number;
  freqBase: number;
  mode: RopeMode;
  /** f32 [ropeDim / 2]: theta of pair i is divided by freqFactors[i] (llama 3.1 rope_freqs.weight). */
  freqFactors?: Binding;
}

export function rope(rt: GpuRuntime, args: RopeArgs): void {
  const { tokens, heads, headDim, ropeDim, freqBase, mode } = args;
  if (ropeDim % 2 !== 0 || ropeDim > headDim || ropeDim <= 0) throw new Error(`rope: ropeDim ${ropeDim} must be even and in 1..${headDim}`);
  const params = packParams([
    { u32: tokens }, { u32: heads }, { u32: headDim }, { u32: ropeDim },
    { f32: Math.log2(freqBase) }, { u32: mode === 'neox' ? 1 : 0 },
  ]);
  const bindings = args.freqFactors ? [args.x, args.positions, args.freqFactors] : [args.x, args.positions];
  const entryPoint = args.freqFactors ? 'rope_factors' : 'rope';
  rt.dispatch({ shader: 'rope', entryPoint }, params, bindings, grid((tokens * heads * ropeDim) / 2, 256));
}
