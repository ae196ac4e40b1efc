// Temperature sampling on the GPU (Gumbel-max); see shaders/sampling.wgsl.
import type { Binding, GpuRuntime } from '../../gpu/index.js';

export interface RowSampling {
  /** 0 means greedy. */
  temperature: number;
  seed: number;
  /** The sequence's step (tokens generated so far), so every draw gets fresh noise. */
  counter: number;
}

/** Packs per-row sampling parameters into the layout of RowParams. */
export function packRowSampling(rows: RowSampling[]): Uint32Array {
  const buf = new ArrayBuffer(Math.max(1, rows.length) * 16);
  const f = new Float32Array(buf);
  const u = new Uint32Array(buf);
  rows.forEach((r, i) => {
    f[i * 4] = r.temperature;
    u[i * 4 + 1] = r.seed >>> 0;
    u[i * 4 + 2] = r.counter >>> 0;
  });
  return u;
}

const WORKGROUP = 256;
const MAX_X = 65535;

/** Adds Gumbel noise to logits / T in place for rows with temperature > 0. */
export function perturbLogits(rt: GpuRuntime, logits: Binding, rowParams: Binding, rows: number, vocab: number): void {
  const groups = Math.ceil((rows * vocab) / WORKGROUP);
  const x = Math.min(groups, MAX_X);
  rt.dispatch({ shader: 'sampling', entryPoint: 'perturb' }, new Uint32Array([rows, vocab, 0, 0]), [logits, rowParams], [x, Math.ceil(groups / x)]);
}

/** CPU reference of the noise, for tests: the same hash as the shader. */
export function gumbelNoiseRef(seed: number, counter: number, index: number): number {
  const pcg = (v: number) => {
    const state = (Math.imul(v >>> 0, 747796405) + 2891336453) >>> 0;
    const word = Math.imul(((state >>> ((state >>> 28) + 4)) ^ state) >>> 0, 277803737) >>> 0;
    return ((word >>> 22) ^ word) >>> 0;
  };
  const h = pcg((seed ^ pcg((counter ^ pcg(index)) >>> 0)) >>> 0);
  const u = ((h >>> 8) + 0.5) / 16777216;
  return -Math.log(-Math.log(u));
}
