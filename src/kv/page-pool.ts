// Page ids in three states: free (no owner, no content worth keeping), cached (no owner, but its
// K/V are those of a known page hash, kept for the prefix cache) and referenced (held by one or
// more KV contexts, counted). Cached pages are evicted least recently released first; a caller
// that releases a block table tail first thus evicts chain tails before their parents. A cached
// page can also be pinned (retained for a workflow's next call): pinned cached pages are evicted
// only when no plain cached page is left, oldest first; pinning never makes a page unavailable.
import type { PageHash } from './page-hash.js';

export type PageState = 'free' | 'cached' | 'referenced';

export class PagePool {
  private readonly refs: Int32Array;
  private readonly hashes: (PageHash | null)[];
  private readonly free: number[];
  /** Cached pages, least recently released first (a Set iterates in insertion order). */
  private readonly lru = new Set<number>();
  /** Cached pages with pins, least recently released (or pinned) first: evicted after every page of `lru`. */
  private readonly retained = new Set<number>();
  private readonly pins: Int32Array;
  /** Bumped when a cached page is evicted, so a stale pin on a reused page id is recognised. */
  private readonly epochs: Int32Array;
  /**
   * Chooses the pinned page to evict once no plain cached page is left (one of `retained`); null
   * or unset: the oldest. KvRetention sets it to evict what its owner will use latest.
   */
  pinnedVictim: ((retained: ReadonlySet<number>) => number | null) | null = null;
  /** Pinned pages evicted so far (kept for a workflow's next call, taken before it came back). */
  pinnedEvictions = 0;

  constructor(readonly totalPages: number) {
    if (!Number.isInteger(totalPages) || totalPages < 1) throw new Error(`a page pool needs a positive number of pages, got ${totalPages}`);
    this.refs = new Int32Array(totalPages);
    this.hashes = new Array<PageHash | null>(totalPages).fill(null);
    this.pins = new Int32Array(totalPages);
    this.epochs = new Int32Array(totalPages);
    // Pop from the end: low ids first, which keeps tests readable.
    this.free = Array.from({ length: totalPages }, (_, i) => totalPages - 1 - i);
  }

  get freePages(): number {
    return this.free.length;
  }

  /** Unreferenced pages kept for their content (retained ones included). */
  get cachedPages(): number {
    return this.lru.size + this.retained.size;
  }

  /** Cached pages that are pinned (evicted last). */
  get retainedPages(): number {
    return this.retained.size;
  }

  /** Pages an allocation can have: free ones, then cached ones by eviction. */
  get availablePages(): number {
    return this.free.length + this.cachedPages;
  }

  /** Pages held by KV contexts. */
  get usedPages(): number {
    return this.totalPages - this.free.length - this.cachedPages;
  }

  /** Changes whenever the page's cached content is evicted (see pin). */
  epoch(page: number): number {
    return this.epochs[page];
  }

  pinCount(page: number): number {
    return this.pins[page];
  }

  /**
   * Pins a page that has a hash (referenced or cached): once unreferenced it is evicted only after
   * every unpinned cached page. Returns the page's epoch, which unpin() needs.
   */
  pin(page: number): number {
    if (this.hashes[page] === null) throw new Error(`page ${page} has no hash; only cached content can be pinned`);
    this.pins[page]++;
    if (this.lru.delete(page)) this.retained.add(page);
    return this.epochs[page];
  }

  /**
   * Drops a pin taken at `epoch`; a page whose last pin goes becomes a plain cached page (most
   * recently released). A pin whose page was evicted since (another epoch) is ignored.
   */
  unpin(page: number, epoch: number): void {
    if (this.epochs[page] !== epoch || this.pins[page] <= 0) return;
    if (--this.pins[page] > 0) return;
    if (this.retained.delete(page)) this.lru.add(page);
  }

  state(page: number): PageState {
    if (this.refs[page] > 0) return 'referenced';
    return this.hashes[page] === null ? 'free' : 'cached';
  }

  refCount(page: number): number {
    return this.refs[page];
  }

  hashOf(page: number): PageHash | null {
    return this.hashes[page];
  }

  /** Takes n free pages (reference count 1 each), or returns null if there are not enough free ones. */
  allocate(n: number): number[] | null {
    if (n > this.free.length) return null;
    const pages = this.free.splice(this.free.length - n, n).reverse();
    for (const p of pages) this.refs[p] = 1;
    return pages;
  }

  /** One more reference to a referenced or cached page (a cached page becomes referenced). */
  retain(page: number): void {
    if (this.state(page) === 'free') throw new Error(`page ${page} is free; cannot retain it`);
    this.lru.delete(page);
    this.retained.delete(page);
    this.refs[page]++;
  }

  /**
   * Drops one reference to each page, in the order given: a page that reaches zero becomes cached
   * (most recently released) if it has a hash, free otherwise.
   */
  release(pages: Iterable<number>): void {
    for (const p of pages) {
      if (this.refs[p] <= 0) throw new Error(`page ${p} released more often than allocated`);
      if (--this.refs[p] > 0) continue;
      if (this.hashes[p] === null) this.free.push(p);
      else if (this.pins[p] > 0) this.retained.add(p);
      else this.lru.add(p);
    }
  }

  /** Records the hash of a referenced page's (full, computed) content. */
  setHash(page: number, hash: PageHash): void {
    if (this.refs[page] <= 0) throw new Error(`page ${page} is not referenced; cannot set its hash`);
    if (this.hashes[page] !== null) throw new Error(`page ${page} already has hash ${this.hashes[page]}`);
    this.hashes[page] = hash;
  }

  /**
   * Frees the least recently released unpinned cached page, or when there is none a pinned one
   * (pinnedVictim's choice, else the oldest); returns it and the hash it had, or null if none is cached.
   */
  evictOldest(): { page: number; hash: PageHash } | null {
    const page = this.lru.size ? this.lru.values().next().value : this.pickPinnedVictim();
    if (page === undefined) return null;
    if (this.retained.has(page)) this.pinnedEvictions++;
    const hash = this.hashes[page]!;
    this.lru.delete(page);
    this.retained.delete(page);
    this.pins[page] = 0;
    this.epochs[page]++;
    this.hashes[page] = null;
    this.free.push(page);
    return { page, hash };
  }

  private pickPinnedVictim(): number | undefined {
    if (!this.retained.size) return undefined;
    const chosen = this.pinnedVictim?.(this.retained) ?? this.retained.values().next().value!;
    if (!this.retained.has(chosen)) throw new Error(`pinnedVictim chose page ${chosen}, which is not a pinned cached page`);
    return chosen;
  }

  /**
   * referenced + cached + free = total, no page in two states or listed twice, cached pages have a
   * hash and free ones none, and no page is owned by more tables than its reference count. With
   * `exact`, the owners are all of them: every reference count equals the tables holding the page.
   */
  checkInvariants(owners: Iterable<readonly number[]> = [], exact = false): void {
    const seen = new Set<number>();
    for (const p of this.free) {
      if (seen.has(p)) throw new Error(`page ${p} is on the free list twice`);
      if (this.refs[p] !== 0) throw new Error(`free page ${p} has reference count ${this.refs[p]}`);
      if (this.hashes[p] !== null) throw new Error(`free page ${p} still has hash ${this.hashes[p]}`);
      seen.add(p);
    }
    for (const p of this.retained) {
      if (this.lru.has(p)) throw new Error(`page ${p} is both retained and plainly cached`);
      if (this.pins[p] <= 0) throw new Error(`retained page ${p} has no pin`);
    }
    for (const p of this.lru) if (this.pins[p] > 0) throw new Error(`cached page ${p} is pinned but not retained`);
    for (const p of [...this.lru, ...this.retained]) {
      if (seen.has(p)) throw new Error(`page ${p} is both free and cached`);
      if (this.refs[p] !== 0) throw new Error(`cached page ${p} has reference count ${this.refs[p]}`);
      if (this.hashes[p] === null) throw new Error(`cached page ${p} has no hash`);
    }
    const counted = new Int32Array(this.totalPages);
    for (const table of owners) for (const p of table) counted[p]++;
    let referenced = 0;
    for (let p = 0; p < this.totalPages; p++) {
      if (this.refs[p] < 0) throw new Error(`page ${p} has reference count ${this.refs[p]}`);
      if (this.refs[p] > 0) referenced++;
      if (counted[p] > this.refs[p]) throw new Error(`page ${p} is owned ${counted[p]} times but has reference count ${this.refs[p]}`);
      if (exact && counted[p] !== this.refs[p]) throw new Error(`page ${p} has reference count ${this.refs[p]} but ${counted[p]} owners`);
    }
    if (referenced + this.cachedPages + this.free.length !== this.totalPages) {
      throw new Error(`pages referenced (${referenced}) + cached (${this.cachedPages}) + free (${this.free.length}) != total (${this.totalPages})`);
    }
  }
}
