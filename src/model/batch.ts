// The Batch: the one contract between scheduler and model (docs/DESIGN.md). A flat, ragged
// list of new tokens from many sequences, mixing prefill chunks and decode tokens.
import type { GpuRuntime } from '../gpu/index.js';

export interface Batch {
  /** All new tokens of all sequences, concatenated. */
  tokenIds: Int32Array;
  /** Position of each token in its sequence. */
  positions: Int32Array;
  /** [n+1] offsets of each sequence's tokens in tokenIds. */
  seqStarts: Int32Array;
  /** Per sequence: tokens in KV after this step. */
  contextLens: Int32Array;
  /** Per sequence: page ids, padded to maxBlocksPerSeq (row-major [n, maxBlocksPerSeq]). */
  blockTables: Int32Array;
  maxBlocksPerSeq: number;
  /** Per token: page * pageSize + offset where its K/V go. */
  slotMapping: Int32Array;
  /** Which token rows produce logits (usually the last of each sequence). */
  sampleRows: Int32Array;
}

export function batchSeqCount(b: Batch): number {
  return b.seqStarts.length - 1;
}

/** Checks the Batch invariants; the model calls it before any GPU work. */
export function validateBatch(b: Batch, pageSize: number): void {
  const n = batchSeqCount(b);
  const t = b.tokenIds.length;
  const fail = (msg: string) => {
    throw new Error(`invalid batch: ${msg}`);
  };
  if (n < 1) fail('no sequences');
  if (b.positions.length !== t || b.slotMapping.length !== t) fail('positions and slotMapping must have one entry per token');
  if (b.seqStarts[0] !== 0 || b.seqStarts[n] !== t) fail('seqStarts must start at 0 and end at the token count');
  if (b.contextLens.length !== n) fail('contextLens must have one entry per sequence');
  if (b.blockTables.length !== n * b.maxBlocksPerSeq) fail('blockTables must be [sequences, maxBlocksPerSeq]');
  for (let s = 0; s < n; s++) {
    const start = b.seqStarts[s];
    const end = b.seqStarts[s + 1];
    if (end <= start) fail(`sequence ${s} has no tokens`);
    if (b.positions[end - 1] !== b.contextLens[s] - 1) fail(`sequence ${s}: last position ${b.positions[end - 1]} != contextLen - 1`);
    if (Math.ceil(b.contextLens[s] / pageSize) > b.maxBlocksPerSeq) fail(`sequence ${s} needs more pages than maxBlocksPerSeq`);
  }
  for (const r of b.sampleRows) if (r < 0 || r >= t) fail(`sample row ${r} out of range`);
}

/**
 * GPU copies of a batch's index arrays, in buffers sized for the largest batch and reused
 * every step (grown, never shrunk, when a larger batch arrives).
 */
export class BatchBuffers {
  tokenIds!: GPUBuffer;
  positions!: GPUBuffer;
  seqStarts!: GPUBuffer;
  contextLens!: GPUBuffer;
  blockTables!: GPUBuffer;
  slotMapping!: GPUBuffer;
  sampleRows!: GPUBuffer;
  private capacity = { tokens: 0, seqs: 0, blocks: 0, samples: 0 };

  constructor(private readonly rt: GpuRuntime) {}

  upload(b: Batch): void {
    const tokens = b.tokenIds.length;
    const seqs = batchSeqCount(b);
    this.ensure(tokens, seqs, b.blockTables.length, b.sampleRows.length);
    const w = (buf: GPUBuffer, data: Int32Array) => this.rt.buffers.write(buf, data);
    w(this.tokenIds, b.tokenIds);
    w(this.positions, b.positions);
    w(this.seqStarts, b.seqStarts);
    w(this.contextLens, b.contextLens);
    w(this.blockTables, b.blockTables);
    w(this.slotMapping, b.slotMapping);
    w(this.sampleRows, b.sampleRows);
  }

  /** Grows the buffers now to hold a batch of these sizes (ForwardPass.reserve). */
  reserve(tokens: number, seqs: number, blocks: number, samples: number): void {
    this.ensure(tokens, seqs, blocks, samples);
  }

  destroy(): void {
    for (const buf of this.all()) this.release(buf);
  }

  private all(): GPUBuffer[] {
    return [this.tokenIds, this.positions, this.seqStarts, this.contextLens, this.blockTables, this.slotMapping, this.sampleRows].filter(Boolean);
  }

  private release(buf: GPUBuffer): void {
    this.rt.forget(buf);
    this.rt.buffers.destroy(buf);
  }

  private ensure(tokens: number, seqs: number, blocks: number, samples: number): void {
    const c = this.capacity;
    if (tokens <= c.tokens && seqs <= c.seqs && blocks <= c.blocks && samples <= c.samples) return;
    this.destroy();
    const grow = (need: number, have: number) => Math.max(need, have, 16);
    c.tokens = grow(tokens, c.tokens);
    c.seqs = grow(seqs, c.seqs);
    c.blocks = grow(blocks, c.blocks);
    c.samples = grow(samples, c.samples);
    const mk = (label: string, n: number) => this.rt.buffers.create(`batch.${label}`, n * 4);
    this.tokenIds = mk('tokenIds', c.tokens);
    this.positions = mk('positions', c.tokens);
    this.seqStarts = mk('seqStarts', c.seqs + 1);
    this.contextLens = mk('contextLens', c.seqs);
    this.blockTables = mk('blockTables', c.blocks);
    this.slotMapping = mk('slotMapping', c.tokens);
    this.sampleRows = mk('sampleRows', c.samples);
  }
}
