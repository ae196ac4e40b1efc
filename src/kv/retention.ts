// KV kept across the calls of a workflow (Continuum's time-to-live pins): when an agent's call
// finishes while its workflow is open, the pages holding its context are pinned under a key
// (workflow and agent) until a deadline. Pinned pages stay cached after plain LRU pages are gone;
// they are never refused to an allocation. Replacing or releasing a key unpins its pages, which
// become plain cached pages again (the superseded tail of a context its next call extended).
// When pinned pages must go, an owner-given rank decides whose (KVFlow: evict what runs latest):
// the key ranked latest loses its pages first, each context from its tail, and a page two keys
// pin goes only when both rank that late.
import type { PagePool } from './page-pool.js';

/** A sort key, compared element by element: the larger, the later the key's pages are needed. */
export type RetentionRank = readonly number[];

interface Retained {
  /** In block-table order (a context's head first). */
  pages: { page: number; epoch: number }[];
  /** Clock time (ms) when the pins lapse. */
  expiresAt: number;
}

export class KvRetention {
  private readonly records = new Map<string, Retained>();

  /**
   * `rank` (optional) orders keys by when their pages will be needed again; without it pinned
   * pages are evicted oldest first.
   */
  constructor(private readonly pool: PagePool, private readonly rank?: (key: string) => RetentionRank) {
    if (rank) pool.pinnedVictim = (retained) => this.latestNeeded(retained);
  }

  /** Keys holding pins now. */
  get keys(): string[] {
    return [...this.records.keys()];
  }

  /** Pins `pages` (which must have hashes; in block-table order) under `key` until `expiresAt`, replacing what the key held. */
  retain(key: string, pages: readonly number[], expiresAt: number): void {
    const record: Retained = { pages: pages.map((page) => ({ page, epoch: this.pool.pin(page) })), expiresAt };
    this.release(key);
    this.records.set(key, record);
  }

  /** Moves the deadline of what `key` holds (false if it holds nothing). */
  extend(key: string, expiresAt: number): boolean {
    const record = this.records.get(key);
    if (!record) return false;
    record.expiresAt = expiresAt;
    return true;
  }

  /** Unpins what `key` holds; false if it holds nothing. */
  release(key: string): boolean {
    const record = this.records.get(key);
    if (!record) return false;
    this.records.delete(key);
    for (const { page, epoch } of record.pages) this.pool.unpin(page, epoch);
    return true;
  }

  /** Releases every key for which `match` holds; returns how many. */
  releaseWhere(match: (key: string) => boolean): number {
    const keys = this.keys.filter(match);
    for (const key of keys) this.release(key);
    return keys.length;
  }

  /** Releases the keys whose deadline has passed; returns them. */
  expire(now: number): string[] {
    const lapsed = [...this.records].filter(([, r]) => r.expiresAt <= now).map(([key]) => key);
    for (const key of lapsed) this.release(key);
    return lapsed;
  }

  /** Pages `key` pins that still hold the content they were pinned with. */
  pagesOf(key: string): number {
    const record = this.records.get(key);
    return record ? record.pages.filter(({ page, epoch }) => this.pool.epoch(page) === epoch).length : 0;
  }

  /**
   * The pinned cached page needed latest: a page counts as needed when the earliest-ranked key
   * pinning it is; among a key's pages, the deepest (the context's tail) goes first.
   */
  private latestNeeded(retained: ReadonlySet<number>): number | null {
    const need = new Map<number, { rank: RetentionRank; depth: number }>();
    for (const [key, record] of this.records) {
      const rank = this.rank!(key);
      record.pages.forEach(({ page, epoch }, depth) => {
        if (!retained.has(page) || this.pool.epoch(page) !== epoch) return;
        const seen = need.get(page);
        if (!seen) need.set(page, { rank, depth });
        else if (compareRanks(rank, seen.rank) < 0) need.set(page, { rank, depth: Math.max(depth, seen.depth) });
        else seen.depth = Math.max(depth, seen.depth);
      });
    }
    let best: number | null = null;
    let bestNeed: { rank: RetentionRank; depth: number } | null = null;
    for (const [page, n] of need) {
      if (!bestNeed || compareRanks(n.rank, bestNeed.rank) > 0 || (compareRanks(n.rank, bestNeed.rank) === 0 && n.depth > bestNeed.depth)) {
        best = page;
        bestNeed = n;
      }
    }
    return best;
  }
}

function compareRanks(a: RetentionRank, b: RetentionRank): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}
