// CPU references of the matmul and embedding kernels, over GGUF-layout weight bytes.
import type { GgmlType } from '../gguf.js';
import { activationGrid, dequantize } from '../quant.js';
import { roundActivations } from '../quantize.js';

export interface CpuWeight {
  type: GgmlType;
  /** N */
  rows: number;
  /** K */
  cols: number;
  /** GGUF-layout bytes of rows x cols elements. */
  bytes: Uint8Array;
}

export interface MatmulRefOptions {
  /** As MatmulOptions.activations: 'llama.cpp' (default) rounds x as the GPU wrapper does. */
  activations?: 'llama.cpp' | 'exact';
}

/**
 * y[m, n] = (init[m, n] +) sum_k x'[m, k] * W[n, k], summed in double precision, where x' is x
 * rounded onto the weight type's activation grid (roundActivations) unless activations: 'exact'.
 */
export function matmulRef(w: CpuWeight, x: Float32Array, m: number, init?: Float32Array, opts: MatmulRefOptions = {}): Float32Array {
  const wf = dequantize(w.type, w.bytes, w.rows * w.cols);
  const grid = opts.activations === 'exact' ? null : activationGrid(w.type);
  if (grid) x = roundActivations(grid, x.subarray(0, m * w.cols));
  const y = new Float32Array(m * w.rows);
  for (let r = 0; r < m; r++) {
    for (let n = 0; n < w.rows; n++) {
      let s = init ? init[r * w.rows + n] : 0;
      for (let k = 0; k < w.cols; k++) s += x[r * w.cols + k] * wf[n * w.cols + k];
      y[r * w.rows + n] = s;
    }
  }
  return y;
}

/** out[t, :] = W row tokenIds[t], or zeros for an id outside [0, rows). */
export function embedRef(w: CpuWeight, tokenIds: Int32Array): Float32Array {
  const wf = dequantize(w.type, w.bytes, w.rows * w.cols);
  const out = new Float32Array(tokenIds.length * w.cols);
  tokenIds.forEach((id, t) => {
    if (id >= 0 && id < w.rows) out.set(wf.subarray(id * w.cols, (id + 1) * w.cols), t * w.cols);
  });
  return out;
}
