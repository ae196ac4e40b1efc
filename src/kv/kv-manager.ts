// Pages for KV contexts (nano-vllm's block_manager.py, vLLM's kv_cache_manager.py): a context's
// block table starts with the longest run of cached pages its tokens allow (prefix cache),
// grows so the next tokens have slots, offers each page it fills to the cache, and gives its
// references back when it is freed (its indexed pages stay cached until evicted). No context
// ever writes into a page another context or the cache holds: such a page is first copied
// (copy-on-write), and the copy goes into the step's KV operations.
import type { PageCopy } from '../model/index.js';
import type { PageHash } from './page-hash.js';
import { NoPrefixCache, type PrefixCache, type PrefixMatch } from './prefix-cache.js';
import { PagePool } from './page-pool.js';
import type { KvContext } from './kv-context.js';

/** What the KV manager needs of a context's pages (a KvContext has it). */
export interface KvOwner {
  /** Tokens whose K/V are in the cache; the next token goes to position numComputed. */
  numComputed: number;
  /** Page ids in position order. */
  blockTable: number[];
}

export interface PrefixCacheStats {
  /** Tokens looked up in the prefix cache (a context's tokens each time it starts computing). */
  queryTokens: number;
  /** Of those, tokens found cached. */
  hitTokens: number;
  /** Cached pages freed to make room. */
  evictions: number;
  /** Pages copied before a write (copy-on-write). */
  pageCopies: number;
}

export class KvManager {
  readonly stats: PrefixCacheStats = { queryTokens: 0, hitTokens: 0, evictions: 0, pageCopies: 0 };
  /**
   * Called when a full page is first indexed in the prefix cache (page `index` of `ctx`'s tokens,
   * its hash in ctx.pageHashes[index]): the context store writes it through from here.
   */
  onIndexed: ((page: number, ctx: KvContext, index: number) => void) | null = null;

  constructor(readonly pool: PagePool, readonly pageSize: number, readonly cache: PrefixCache = new NoPrefixCache()) {
    if (!Number.isInteger(pageSize) || pageSize < 1) throw new Error(`page size must be a positive integer, got ${pageSize}`);
  }

  get freePages(): number {
    return this.pool.freePages;
  }

  get totalPages(): number {
    return this.pool.totalPages;
  }

  /** Pages a context of `tokens` tokens occupies. */
  pagesFor(tokens: number): number {
    return Math.ceil(tokens / this.pageSize);
  }

  /** New pages needed so positions numComputed .. numComputed + newTokens - 1 have private slots. */
  pagesNeeded(seq: KvOwner, newTokens: number): number {
    const appended = Math.max(0, this.pagesFor(seq.numComputed + newTokens) - seq.blockTable.length);
    return appended + this.sharedWritePages(seq, newTokens).length;
  }

  canAllocate(seq: KvOwner, newTokens: number): boolean {
    return this.pagesNeeded(seq, newTokens) <= this.pool.availablePages;
  }

  /**
   * Makes positions numComputed .. numComputed + newTokens - 1 writable: shared pages among them
   * are replaced by private copies, and pages are appended. Returns the copies the GPU must make
   * before the step writes; throws if the pool is short.
   */
  allocate(seq: KvOwner, newTokens: number): PageCopy[] {
    const need = this.pagesNeeded(seq, newTokens);
    const pages = this.take(need);
    const copies: PageCopy[] = [];
    for (const index of this.sharedWritePages(seq, newTokens)) {
      const src = seq.blockTable[index];
      const dst = pages.pop()!;
      copies.push({ src, dst });
      seq.blockTable[index] = dst;
      this.pool.release([src]);
    }
    seq.blockTable.push(...pages);
    this.stats.pageCopies += copies.length;
    return copies;
  }

  /** The longest cached prefix of a context with no pages: at most tokens - 1 tokens, the last token is always computed. */
  lookupPrefix(ctx: KvContext): PrefixMatch {
    if (ctx.blockTable.length || ctx.numComputed) throw new Error('lookupPrefix: the context already holds pages');
    if (!this.cache.enabled) return { pages: [] };
    const maxPages = Math.floor((ctx.tokens.length - 1) / this.pageSize);
    return this.cache.matchPrefix(ctx.tokens, ctx.salt, ctx.pageHashes, maxPages);
  }

  /**
   * The hash of the page after `match` that the context could still take from the cache (a full
   * page before its last token), or null: the scheduler defers a context whose next page another
   * context is computing right now, so it hits once that page is indexed.
   */
  nextPageHash(ctx: KvContext, match: PrefixMatch): PageHash | null {
    const k = match.pages.length;
    if (!this.cache.enabled || k >= Math.floor((ctx.tokens.length - 1) / this.pageSize)) return null;
    return this.cache.pageHash(ctx.tokens, ctx.salt, ctx.pageHashes, k);
  }

  /** Hashes of the full pages of a context's known tokens it has not computed yet (none with the cache off). */
  pendingPageHashes(ctx: KvContext): PageHash[] {
    if (!this.cache.enabled) return [];
    const out: PageHash[] = [];
    const end = Math.floor(ctx.tokens.length / this.pageSize);
    for (let i = Math.floor(ctx.numComputed / this.pageSize); i < end; i++) out.push(this.cache.pageHash(ctx.tokens, ctx.salt, ctx.pageHashes, i));
    return out;
  }

  /** Whether a context can take `match` and then `newTokens` more tokens (cached pages it takes are not evictable). */
  canTakePrefix(match: PrefixMatch, newTokens: number): boolean {
    const prefix = match.pages.length * this.pageSize;
    const appended = this.pagesFor(prefix + newTokens) - match.pages.length;
    const cachedTaken = match.pages.filter((p) => this.pool.state(p) === 'cached').length;
    return appended <= this.pool.availablePages - cachedTaken;
  }

  /** Takes the matched pages into an empty context (a reference each); returns the tokens now computed. */
  takePrefix(ctx: KvContext, match: PrefixMatch): number {
    if (ctx.blockTable.length || ctx.numComputed) throw new Error('takePrefix: the context already holds pages');
    for (const p of match.pages) this.pool.retain(p);
    ctx.blockTable = [...match.pages];
    ctx.numComputed = match.pages.length * this.pageSize;
    ctx.indexedPages = match.pages.length;
    if (this.cache.enabled) {
      this.stats.queryTokens += ctx.tokens.length;
      this.stats.hitTokens += ctx.numComputed;
    }
    return ctx.numComputed;
  }

  /**
   * An empty context shares the first `tokens` computed tokens of `source` (same token ids): it
   * takes a reference to the pages holding them, including a partial last page, which the first
   * write copies.
   */
  share(source: KvContext, ctx: KvContext, tokens: number): void {
    if (ctx.blockTable.length || ctx.numComputed) throw new Error('share: the context already holds pages');
    if (tokens > source.numComputed) throw new Error(`share: ${tokens} tokens asked, the source has computed ${source.numComputed}`);
    for (let i = 0; i < tokens; i++) if (source.tokens[i] !== ctx.tokens[i]) throw new Error(`share: the contexts differ at token ${i}`);
    const pages = source.blockTable.slice(0, this.pagesFor(tokens));
    for (const p of pages) this.pool.retain(p);
    ctx.blockTable = pages;
    ctx.numComputed = tokens;
    // A partial page is copied before it is written, and the copy is indexed once full.
    ctx.indexedPages = Math.min(Math.floor(tokens / this.pageSize), source.indexedPages);
  }

  /** Offers every page the context has filled since the last call to the prefix cache. */
  indexComputed(ctx: KvContext): void {
    if (!this.cache.enabled) return;
    const full = Math.floor(ctx.numComputed / this.pageSize);
    for (let i = ctx.indexedPages; i < full; i++) {
      if (this.cache.insert(ctx.blockTable[i], ctx.tokens, ctx.salt, ctx.pageHashes, i)) this.onIndexed?.(ctx.blockTable[i], ctx, i);
    }
    ctx.indexedPages = Math.max(ctx.indexedPages, full);
  }

  /**
   * Private pages for content restored from elsewhere (the context store): `count` pages for pages
   * `first ..` of an empty context's tokens, whose first `first` pages must be cached (they are
   * kept from eviction while pages are taken). Null (nothing taken) when the cache is off, that
   * prefix is not cached, or the pool cannot spare the pages. The caller writes their K/V, then
   * adoptPages() indexes them (or, if the write failed, pool.release() frees them).
   */
  takePagesFor(ctx: KvContext, first: number, count: number): number[] | null {
    if (!this.cache.enabled || count < 1) return null;
    const prefix = this.cache.matchPrefix(ctx.tokens, ctx.salt, ctx.pageHashes, first).pages;
    if (prefix.length < first) return null;
    const cachedPrefix = prefix.filter((p) => this.pool.state(p) === 'cached').length;
    if (count > this.pool.availablePages - cachedPrefix) return null;
    for (const p of prefix) this.pool.retain(p);
    try {
      return this.take(count);
    } finally {
      this.pool.release([...prefix].reverse());
    }
  }

  /**
   * Indexes pages (from takePagesFor, their K/V written) as pages `first ..` of the context's
   * tokens, as if computed, and releases them: they stay cached. A page whose content another
   * page holds by now is freed. Returns how many were indexed.
   */
  adoptPages(ctx: KvContext, first: number, pages: readonly number[]): number {
    const indexed = pages.filter((page, i) => this.cache.insert(page, ctx.tokens, ctx.salt, ctx.pageHashes, first + i));
    this.pool.release([...pages].reverse());
    return indexed.length;
  }

  /**
   * Forgets every cached page (their K/V are gone: the device that held them was lost). Only
   * when no context holds a page; returns how many were cached.
   */
  dropCachedPages(): number {
    if (this.pool.usedPages) throw new Error(`dropCachedPages: ${this.pool.usedPages} pages are still held`);
    return this.cache.evict(this.pool.cachedPages);
  }

  /** Releases every page of the context, tail first (so its tail is evicted before its head), and empties its block table. */
  free(seq: KvOwner & { indexedPages?: number }): void {
    this.pool.release([...seq.blockTable].reverse());
    seq.blockTable = [];
    if (seq.indexedPages !== undefined) seq.indexedPages = 0;
  }

  /** page * pageSize + offset of a position; throws if the position has no page. */
  slotFor(seq: KvOwner, position: number): number {
    const page = seq.blockTable[Math.floor(position / this.pageSize)];
    if (position < 0 || page === undefined) throw new Error(`position ${position} has no page (block table of ${seq.blockTable.length} pages)`);
    return page * this.pageSize + (position % this.pageSize);
  }

  /**
   * Pool and cache invariants with these contexts as owners of pages. With `exact`, they are
   * all the owners: every reference is accounted for.
   */
  checkInvariants(seqs: Iterable<KvOwner>, exact = false): void {
    const tables: number[][] = [];
    for (const s of seqs) {
      if (s.blockTable.length < this.pagesFor(s.numComputed)) {
        throw new Error(`sequence has ${s.numComputed} computed tokens but only ${s.blockTable.length} pages`);
      }
      tables.push(s.blockTable);
    }
    this.pool.checkInvariants(tables, exact);
    this.cache.checkIntegrity();
  }

  /** Indexes (in the block table) of pages a write of the next `newTokens` positions would touch that others hold. */
  private sharedWritePages(seq: KvOwner, newTokens: number): number[] {
    const out: number[] = [];
    const first = Math.floor(seq.numComputed / this.pageSize);
    const last = Math.min(seq.blockTable.length, this.pagesFor(seq.numComputed + newTokens)) - 1;
    for (let i = first; i <= last; i++) {
      const p = seq.blockTable[i];
      if (this.pool.refCount(p) > 1 || this.pool.hashOf(p) !== null) out.push(i);
    }
    return out;
  }

  /** n pages, evicting cached ones when the free list is short. */
  private take(n: number): number[] {
    if (n === 0) return [];
    const short = n - this.pool.freePages;
    if (short > 0) this.stats.evictions += this.cache.evict(short);
    const pages = this.pool.allocate(n);
    if (!pages) throw new Error(`KV pool exhausted: ${n} pages needed, ${this.pool.freePages} free and ${this.pool.cachedPages} cached of ${this.pool.totalPages}`);
    return pages;
  }
}
