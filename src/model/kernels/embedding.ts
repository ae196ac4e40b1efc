// Embedding lookup: out[t, :] = dequantized row tokenIds[t] of a (possibly quantized) weight.
import type { Binding, GpuRuntime } from '../../gpu/index.js';
import { checkBinding, grid2d, weightWordsPerRow, wgslWeightType, type GpuWeight } from './matmul.js';

const THREADS = 64; // workgroup size of embedding.wgsl

/**
 * Records the lookup of `count` token ids (i32) into out (f32 [count, w.cols]).
 * Ids outside [0, w.rows) give rows of zeros.
 */
export function embed(
  rt: GpuRuntime,
  w: GpuWeight,
  tokenIds: Binding,
  out: Binding,
  count: number,
  opts: { maxGroupsPerDim?: number } = {},
): void {
  const wordsPerRow = weightWordsPerRow(w);
  if (count <= 0) return;
  checkBinding(tokenIds, count * 4, 'token ids', w.name);
  checkBinding(out, count * w.cols * 4, 'output', w.name);
  const cols4 = w.cols / 4;
  const params = new Uint32Array([count, cols4, w.rows, wordsPerRow]);
  const groups = grid2d(Math.ceil((count * cols4) / THREADS), opts.maxGroupsPerDim);
  rt.dispatch({ shader: 'embedding', entryPoint: 'embed', defines: { WTYPE: wgslWeightType(w) } }, params, [w.buffer, tokenIds, out], groups);
}
