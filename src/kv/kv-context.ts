// What owns KV pages: a block table and the token ids whose K/V those pages hold (or will
// hold). A running request owns one; a session or a restored record can own one the same way.
import type { PageHash } from './page-hash.js';

export class KvContext {
  /** Token ids in position order; grows as tokens are generated. */
  readonly tokens: number[];
  /** Page ids in position order. */
  blockTable: number[] = [];
  /** Tokens (from the start of `tokens`) whose K/V are in the pages. */
  numComputed = 0;
  /**
   * Hashes of the first pages of `tokens` (prefix cache). They depend only on the tokens and the
   * salt, so they stay valid when the pages go (preemption) and are never computed twice.
   */
  readonly pageHashes: PageHash[] = [];
  /** Pages at the start of the block table already offered to the prefix cache. */
  indexedPages = 0;

  constructor(tokens: readonly number[], readonly salt = '') {
    this.tokens = [...tokens];
  }
}
