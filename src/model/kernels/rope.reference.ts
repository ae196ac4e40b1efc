// CPU references of RoPE, in place like the kernel: ropeReference in float64 math from the
// angle formula, ropeTableReference applying a RopeTable's cos/sin exactly as the kernel does.
import { fmaF32 } from './matmul.reference.js';
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

function pairIndices(mode: RopeMode, base: number, i: number, half: number): [number, number] {
  return mode === 'neox' ? [base + i, base + i + half] : [base + 2 * i, base + 2 * i + 1];
}

export function ropeReference(a: RopeReferenceArgs): void {
  const half = a.ropeDim / 2;
  a.positions.forEach((pos, t) => {
    for (let h = 0; h < a.heads; h++) {
      const base = (t * a.heads + h) * a.headDim;
      for (let i = 0; i < half; i++) {
        const theta = (pos * a.freqBase ** ((-2 * i) / a.ropeDim)) / (a.freqFactors ? a.freqFactors[i] : 1);
        const [ia, ib] = pairIndices(a.mode, base, i, half);
        const x0 = a.x[ia];
        const x1 = a.x[ib];
        a.x[ia] = x0 * Math.cos(theta) - x1 * Math.sin(theta);
        a.x[ib] = x0 * Math.sin(theta) + x1 * Math.cos(theta);
      }
    }
  });
}

/** The kernel's arithmetic: fmaf(x0, cos, -(x1 * sin)) and fmaf(x0, sin, x1 * cos) in f32, cos/sin from `cosSin` ([pos, ropeDim / 2] pairs). */
export function ropeTableReference(a: Omit<RopeReferenceArgs, 'freqBase' | 'freqFactors'> & { cosSin: Float32Array }): void {
  const half = a.ropeDim / 2;
  a.positions.forEach((pos, t) => {
    for (let h = 0; h < a.heads; h++) {
      const base = (t * a.heads + h) * a.headDim;
      for (let i = 0; i < half; i++) {
        const c = a.cosSin[(pos * half + i) * 2];
        const s = a.cosSin[(pos * half + i) * 2 + 1];
        const [ia, ib] = pairIndices(a.mode, base, i, half);
        const x0 = a.x[ia];
        const x1 = a.x[ib];
        a.x[ia] = fmaF32(x0, c, -Math.fround(x1 * s));
        a.x[ib] = fmaF32(x0, s, Math.fround(x1 * c));
      }
    }
  });
}
