// Pages for sequences (nano-vllm's block_manager.py without the prefix cache yet): a sequence's
// block table grows so the next tokens have slots, and goes back to the pool when it is freed.
// Pages keep reference counts (PagePool) so a prefix cache can share them later.
import { PagePool } from './page-pool.js';

/** What the KV manager needs of a sequence (the scheduler's Sequence has it). */
export interface KvOwner {
  /** Tokens whose K/V are in the cache; the next token goes to position numComputed. */
  numComputed: number;
  /** Page ids in position order. */
  blockTable: number[];
}

export class KvManager {
  constructor(readonly pool: PagePool, readonly pageSize: number) {
    if (!Number.isInteger(pageSize) || pageSize < 1) throw new Error(`page size must be a positive integer, got ${pageSize}`);
  }

  get freePages(): number {
    return this.pool.freePages;
  }

  get totalPages(): number {
    return this.pool.totalPages;
  }

  /** Pages a sequence of `tokens` tokens occupies. */
  pagesFor(tokens: number): number {
    return Math.ceil(tokens / this.pageSize);
  }

  /** New pages needed so positions numComputed .. numComputed + newTokens - 1 have slots. */
  pagesNeeded(seq: KvOwner, newTokens: number): number {
    return Math.max(0, this.pagesFor(seq.numComputed + newTokens) - seq.blockTable.length);
  }

  canAllocate(seq: KvOwner, newTokens: number): boolean {
    return this.pagesNeeded(seq, newTokens) <= this.pool.freePages;
  }

  /** Appends pages to the block table so the next `newTokens` tokens have slots; throws if the pool is short. */
  allocate(seq: KvOwner, newTokens: number): void {
    const n = this.pagesNeeded(seq, newTokens);
    if (n === 0) return;
    const pages = this.pool.allocate(n);
    if (!pages) throw new Error(`KV pool exhausted: ${n} pages needed, ${this.pool.freePages} free of ${this.pool.totalPages}`);
    seq.blockTable.push(...pages);
  }

  /** Releases every page of the sequence and empties its block table (numComputed is the caller's). */
  free(seq: KvOwner): void {
    this.pool.release(seq.blockTable);
    seq.blockTable = [];
  }

  /** page * pageSize + offset of a position; throws if the position has no page. */
  slotFor(seq: KvOwner, position: number): number {
    const page = seq.blockTable[Math.floor(position / this.pageSize)];
    if (position < 0 || page === undefined) throw new Error(`position ${position} has no page (block table of ${seq.blockTable.length} pages)`);
    return page * this.pageSize + (position % this.pageSize);
  }

  /** Pool invariants with these sequences as the owners of pages. */
  checkInvariants(seqs: Iterable<KvOwner>): void {
    const tables: number[][] = [];
    for (const s of seqs) {
      if (s.blockTable.length < this.pagesFor(s.numComputed)) {
        throw new Error(`sequence has ${s.numComputed} computed tokens but only ${s.blockTable.length} pages`);
      }
      tables.push(s.blockTable);
    }
    this.pool.checkInvariants(tables);
  }
}
