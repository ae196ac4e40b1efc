// Per-row bookkeeping of the llama.cpp kernel set only (numerics 'llama.cpp'): which kernel
// llama.cpp would pick for a row depends on the batch it sees, so each row carries its place in a
// llama.cpp batch of its own sequence. The fast set needs none of it; nothing of it is in the Batch.
import type { GpuRuntime } from '../gpu/index.js';
import type { Batch } from './batch.js';

/**
 * Per token, (its index among its sequence's new tokens, their count): where the token would sit
 * in a llama.cpp batch of that sequence alone. The matmuls that reproduce llama.cpp's order pick
 * its single-token or prompt kernel from it (matmul_llama.wgsl rows_llama, matmul_qk.wgsl).
 */
export function rowPlaces(b: Batch): Uint32Array {
  const out = new Uint32Array(2 * b.tokenIds.length);
  for (let s = 0; s + 1 < b.seqStarts.length; s++) {
    const len = b.seqStarts[s + 1] - b.seqStarts[s];
    for (let i = 0; i < len; i++) out.set([i, len], 2 * (b.seqStarts[s] + i));
  }
  return out;
}

/** rowPlaces of each step in a GPU buffer (u32 pairs), grown when a larger batch arrives, never per step. */
export class LlamaRowPlaces {
  private buffer: GPUBuffer | null = null;

  constructor(private readonly rt: GpuRuntime) {}

  /** Uploads the batch's row places; call before recording the step's dispatches. */
  upload(b: Batch): GPUBuffer {
    const data = rowPlaces(b);
    if (!this.buffer || this.buffer.size < data.byteLength) {
      this.destroy();
      this.buffer = this.rt.buffers.create('llama.rowPlaces', Math.max(data.byteLength, 128));
    }
    this.rt.buffers.write(this.buffer, data);
    return this.buffer;
  }

  destroy(): void {
    if (!this.buffer) return;
    this.rt.forget(this.buffer);
    this.rt.buffers.destroy(this.buffer);
    this.buffer = null;
  }
}
