// The prefix cache (vLLM's automatic prefix caching, mini-sglang's BasePrefixCache interface):
// an index from chained page hashes to the pool pages holding that content. A full, computed
// page is inserted under its hash; a new context walks its tokens page by page and takes the
// longest run whose hashes (and, against collisions, token ids, parent and salt) match. Pages
// stay in the index while referenced and while cached; evict() frees the least recently
// released cached pages and forgets their hashes.
import { PageHasher, type PageHash } from './page-hash.js';
import type { PagePool } from './page-pool.js';

export interface PrefixMatch {
  /** Pages of the matched run, in position order (no reference taken yet). */
  pages: number[];
}

export interface PrefixCache {
  readonly enabled: boolean;
  /**
   * The longest run of cached pages that `tokens` starts with, at most `maxPages` pages.
   * `hashes` holds the hashes of the first pages of `tokens` already computed; it is extended
   * in place as far as the walk goes (a context keeps it, so no page is hashed twice).
   */
  matchPrefix(tokens: readonly number[], salt: string, hashes: PageHash[], maxPages: number): PrefixMatch;
  /** The hash of page `index` of `tokens` (extending `hashes` up to it). */
  pageHash(tokens: readonly number[], salt: string, hashes: PageHash[], index: number): PageHash;
  /**
   * Indexes a referenced page whose full content is page `index` of `tokens`. False (and nothing
   * changes) if the page already has a hash or another page holds this content.
   */
  insert(page: number, tokens: readonly number[], salt: string, hashes: PageHash[], index: number): boolean;
  /** Frees up to n cached pages, least recently released first; returns how many. */
  evict(n: number): number;
  /** Every indexed hash names exactly its page, and every hashed page of the pool is indexed. */
  checkIntegrity(): void;
}

/** A cache that caches nothing: every page is private and freed when released. */
export class NoPrefixCache implements PrefixCache {
  readonly enabled = false;
  matchPrefix(): PrefixMatch {
    return { pages: [] };
  }
  pageHash(): PageHash {
    throw new Error('the prefix cache is off: pages have no hashes');
  }
  insert(): boolean {
    return false;
  }
  evict(): number {
    return 0;
  }
  checkIntegrity(): void {}
}

interface Entry {
  page: number;
  parent: PageHash | null;
  salt: string;
  ids: Int32Array;
}

export class HashPrefixCache implements PrefixCache {
  readonly enabled = true;
  private readonly hasher: PageHasher;
  private readonly index = new Map<PageHash, Entry>();
  /** Lookups whose hash matched but whose content did not (64-bit collisions; expected 0). */
  collisions = 0;

  constructor(private readonly pool: PagePool, readonly pageSize: number, modelFingerprint: string) {
    this.hasher = new PageHasher(modelFingerprint);
  }

  get size(): number {
    return this.index.size;
  }

  pageHash(tokens: readonly number[], salt: string, hashes: PageHash[], index: number): PageHash {
    const ps = this.pageSize;
    if ((index + 1) * ps > tokens.length) throw new Error(`page ${index} of ${tokens.length} tokens is not full`);
    for (let i = hashes.length; i <= index; i++) {
      hashes.push(this.hasher.hash(i === 0 ? null : hashes[i - 1], tokens.slice(i * ps, (i + 1) * ps), salt));
    }
    return hashes[index];
  }

  matchPrefix(tokens: readonly number[], salt: string, hashes: PageHash[], maxPages: number): PrefixMatch {
    const pages: number[] = [];
    const limit = Math.min(maxPages, Math.floor(tokens.length / this.pageSize));
    for (let i = 0; i < limit; i++) {
      const hash = this.pageHash(tokens, salt, hashes, i);
      const entry = this.index.get(hash);
      if (!entry) break;
      if (!this.sameContent(entry, tokens, salt, i === 0 ? null : hashes[i - 1], i)) {
        this.collisions++;
        break;
      }
      pages.push(entry.page);
    }
    return { pages };
  }

  insert(page: number, tokens: readonly number[], salt: string, hashes: PageHash[], index: number): boolean {
    if (this.pool.hashOf(page) !== null) return false;
    const hash = this.pageHash(tokens, salt, hashes, index);
    if (this.index.has(hash)) return false;
    const ps = this.pageSize;
    this.index.set(hash, { page, parent: index === 0 ? null : hashes[index - 1], salt, ids: Int32Array.from(tokens.slice(index * ps, (index + 1) * ps)) });
    this.pool.setHash(page, hash);
    return true;
  }

  evict(n: number): number {
    let evicted = 0;
    while (evicted < n) {
      const gone = this.pool.evictOldest();
      if (!gone) break;
      this.index.delete(gone.hash);
      evicted++;
    }
    return evicted;
  }

  checkIntegrity(): void {
    for (const [hash, entry] of this.index) {
      if (this.pool.hashOf(entry.page) !== hash) throw new Error(`prefix cache: hash ${hash} names page ${entry.page}, which has hash ${this.pool.hashOf(entry.page)}`);
      if (this.pool.state(entry.page) === 'free') throw new Error(`prefix cache: hash ${hash} names free page ${entry.page}`);
    }
    let hashed = 0;
    for (let p = 0; p < this.pool.totalPages; p++) if (this.pool.hashOf(p) !== null) hashed++;
    if (hashed !== this.index.size) throw new Error(`prefix cache: ${hashed} pages have hashes but ${this.index.size} are indexed`);
  }

  private sameContent(entry: Entry, tokens: readonly number[], salt: string, parent: PageHash | null, index: number): boolean {
    if (entry.parent !== parent || entry.salt !== salt) return false;
    const start = index * this.pageSize;
    for (let j = 0; j < this.pageSize; j++) if (entry.ids[j] !== tokens[start + j]) return false;
    return true;
  }
}
