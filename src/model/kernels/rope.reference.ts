// CPU reference of RoPE (float64 math), in place like the kernel.
import type { RopeMode } from './rope.js';

export interface RopeReferenceArgs {
  x: Float32Array;
  positions: Int32Array;
  heads: number;
  headDim: number;
  ropeDim: number;
  freqBase: number;
  mode: RopeMode;
  freqFactors?: Float32Array;
}

export function ropeReference(a: RopeReferenceArgs): void {
  const half = a.ropeDim / 2;
  a.positions.forEach((pos, t) => {
    for (let h = 0; h < a.heads; h++) {
      const base = (t * a.heads + h) * a.headDim;
      for (let i = 0; i < half; i++) {
        const theta = (pos * a.freqBase ** ((-2 * i) / a.ropeDim)) / (a.freqFactors ? a.freqFactors[i] : 1);
        const [ia, ib] = a.mode === 'neox' ? [base + i, base + i + half] : [base + 2 * i, base + 2 * i + 1];
        const x0 = a.x[ia];
        const x1 = a.x[ib];
        a.x[ia] = x0 * Math.cos(theta) - x1 * Math.sin(theta);
        a.x[ib] = x0 * Math.sin(theta) + x1 * Math.cos(theta);
      }
    }
  });
}
