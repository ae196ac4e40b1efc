// KV kept across the calls of a workflow (Continuum's time-to-live pins): when an agent's call
// finishes while its workflow is open, the pages holding its context are pinned under a key
// (workflow and agent) until a deadline. Pinned pages stay cached after plain LRU pages are gone;
// they are never refused to an allocation. Replacing or releasing a key unpins its pages, which
// become plain cached pages again (the superseded tail of a context its next call extended).
import type { PagePool } from './page-pool.js';

interface Retained {
  pages: { page: number; epoch: number }[];
  /** Clock time (ms) when the pins lapse. */
  expiresAt: number;
}

export class KvRetention {
  private readonly records = new Map<string, Retained>();

  constructor(private readonly pool: PagePool) {}

  /** Keys holding pins now. */
  get keys(): string[] {
    return [...this.records.keys()];
  }

  /** Pins `pages` (which must have hashes) under `key` until `expiresAt`, replacing what the key held. */
  retain(key: string, pages: readonly number[], expiresAt: number): void {
    const record: Retained = { pages: pages.map((page) => ({ page, epoch: this.pool.pin(page) })), expiresAt };
    this.release(key);
    this.records.set(key, record);
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
}
