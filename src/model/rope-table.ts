// cos and sin of every (position, rotated pair), computed once on the host and read by the rope
// kernel (vLLM's cos_sin_cache). Built as llama.cpp's CPU rope builds its cache
// (ggml_rope_cache_init): theta starts at the position and is multiplied by
// theta_scale = base^(-2 / ropeDim) once per pair in f32, then divided by the pair's frequency
// factor; cos and sin are glibc's cosf and sinf (libm.ts). Positions are exact integers, so
// computing the table once and reading it avoids GPU sin/cos, whose error WGSL leaves open.
import type { GpuRuntime } from '../gpu/index.js';
import type { ModelConfig } from './config.js';
import { cosf, sinf } from './libm.js';

const f32 = Math.fround;

/** [positions, ropeDim / 2] pairs of (cos, sin), as f32, for positions from..to-1. */
export function ropeCosSin(c: ModelConfig, freqFactors: Float32Array | undefined, from: number, to: number): Float32Array {
  const half = c.ropeDim / 2;
  const thetaScale = f32(Math.pow(f32(c.ropeFreqBase), f32(-2 / c.ropeDim)));
  const out = new Float32Array((to - from) * half * 2);
  for (let pos = from; pos < to; pos++) {
    let theta = f32(pos);
    for (let i = 0; i < half; i++) {
      const t = freqFactors ? f32(theta / freqFactors[i]) : theta;
      const at = ((pos - from) * half + i) * 2;
      out[at] = cosf(t);
      out[at + 1] = sinf(t);
      theta = f32(theta * thetaScale);
    }
  }
  return out;
}

/** The table in a GPU buffer, grown (doubling) to cover the largest position a batch uses. */
export class RopeTable {
  private buffer: GPUBuffer | null = null;
  private positions = 0;

  constructor(private readonly rt: GpuRuntime, private readonly config: ModelConfig, private readonly freqFactors?: Float32Array) {}

  /** The buffer, covering positions 0..maxPosition. */
  cover(maxPosition: number): GPUBuffer {
    if (this.buffer && maxPosition < this.positions) return this.buffer;
    const positions = Math.max(256, 2 ** Math.ceil(Math.log2(maxPosition + 1)));
    const table = ropeCosSin(this.config, this.freqFactors, 0, positions);
    this.destroy();
    this.buffer = this.rt.buffers.createWith('rope.cosSin', table);
    this.positions = positions;
    return this.buffer;
  }

  destroy(): void {
    if (!this.buffer) return;
    this.rt.forget(this.buffer);
    this.rt.buffers.destroy(this.buffer);
    this.buffer = null;
    this.positions = 0;
  }
}
