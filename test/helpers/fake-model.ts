// A fake model over a fake paged KV cache, for scheduler and prefix-cache tests without a GPU.
import { expect } from 'vitest';
import { validateBatch, type Batch } from '../../src/model/batch.js';
import type { PageCopy } from '../../src/model/index.js';

export const VOCAB = 1000;

/** The fake model's next token: a hash of the whole token history. */
export function nextToken(history: readonly number[]): number {
  let h = 2166136261;
  for (const t of history) {
    h ^= t + 1;
    h = Math.imul(h, 16777619) >>> 0;
  }
  return h % VOCAB;
}

/**
 * A fake model over a fake paged KV cache: each token row writes (token, position) into its slot;
 * each sample row reads the sequence's whole history back through its block table and hashes it.
 * So a wrong slot, a page shared by mistake, a page freed too early or a missing page copy changes
 * the output.
 */
export class FakeModel {
  private readonly store = new Map<number, { token: number; pos: number }>();
  steps = 0;

  constructor(private readonly pageSize: number) {}

  /** Runs a step: its page copies (copy-on-write) first, then the batch. */
  run(b: Batch, kvOps: readonly PageCopy[] = []): number[] {
    validateBatch(b, this.pageSize);
    this.steps++;
    for (const { src, dst } of kvOps) {
      for (let i = 0; i < this.pageSize; i++) {
        const kv = this.store.get(src * this.pageSize + i);
        if (kv) this.store.set(dst * this.pageSize + i, kv);
        else this.store.delete(dst * this.pageSize + i);
      }
    }
    for (let t = 0; t < b.tokenIds.length; t++) this.store.set(b.slotMapping[t], { token: b.tokenIds[t], pos: b.positions[t] });
    const out: number[] = [];
    for (const r of b.sampleRows) {
      let s = 0;
      while (b.seqStarts[s + 1] <= r) s++;
      expect(r).toBe(b.seqStarts[s + 1] - 1);
      const history: number[] = [];
      for (let p = 0; p < b.contextLens[s]; p++) {
        const page = b.blockTables[s * b.maxBlocksPerSeq + Math.floor(p / this.pageSize)];
        expect(page).toBeGreaterThanOrEqual(0);
        const kv = this.store.get(page * this.pageSize + (p % this.pageSize));
        expect(kv?.pos).toBe(p);
        history.push(kv!.token);
      }
      out.push(nextToken(history));
    }
    return out;
  }
}

/** What a sequence generates when it runs alone. */
export function runAlone(prompt: number[], maxTokens: number, contextLength: number, stopIds: number[] = []) {
  const tokens = [...prompt];
  const generated: number[] = [];
  for (;;) {
    const id = nextToken(tokens);
    if (stopIds.includes(id)) return { generated, reason: 'stop' };
    tokens.push(id);
    generated.push(id);
    if (generated.length >= maxTokens || tokens.length >= contextLength) return { generated, reason: 'length' };
  }
}

