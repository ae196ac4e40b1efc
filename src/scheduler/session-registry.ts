// Sessions (the Prompt API's, or any caller's): KV contexts whose pages stay referenced between
// requests, so they are never evicted and a session's next request computes only what is new. A
// request on a session starts from the longest common prefix of its tokens and the session's
// (the tokens are always one rendering of the whole conversation: where a chat template renders
// history differently from how it was generated, the session's pages after the divergence are
// simply not used), and when it ends the session holds its context instead (prompt and
// generated tokens computed). A clone references every page of its parent: no prefill, and the
// partial last page is copied on the first write. Pinned pages are bounded: past `maxPages`
// (distinct pages held by sessions), or when running requests need pages, the least recently
// used session is unpinned: its references go (full pages stay in the prefix cache, evictable)
// and its next request takes from the cache what is still there and computes the rest.
// Sessions are bounded in time and number too (SessionLimits): one with no request for
// `unpinAfterMs` is unpinned, one with none for `expireAfterMs` is destroyed, and no more than
// `maxSessions` are open. Idleness is checked lazily, whenever the scheduler builds a step or a
// session is created, cloned or looked up (an engine doing nothing has nothing to reclaim), and a
// session with a request queued or running is never idle.
import { KvContext } from '../kv/kv-context.js';
import type { KvManager } from '../kv/kv-manager.js';
import type { Sequence } from './sequence.js';

export class KvSession {
  /** The session's computed context: numComputed === tokens.length (0 tokens and no pages once unpinned). */
  context: KvContext;
  /** Bumped on every use, for least-recently-used unpinning. */
  lastUsed = 0;
  /** When the session was last used or its last request ended (SessionLimits.now), for idle limits. */
  lastActiveAt = 0;
  /** Requests on the session queued or running (a session with any is not idle). */
  requests = 0;
  /** Tokens of the last context the session held (kept when it is unpinned). */
  tokenCount = 0;

  constructor(readonly id: string, readonly salt: string) {
    this.context = new KvContext([], salt);
  }

  get pinned(): boolean {
    return this.context.blockTable.length > 0;
  }
}

export interface SessionInfo {
  id: string;
  /** Tokens of the session's context. */
  tokens: number;
  /** Pages the session references now (0 when unpinned). */
  pages: number;
  /** Whether its pages are held (false: unpinned to the prefix cache). */
  pinned: boolean;
}

export interface SessionLimits {
  /** Most distinct KV pages sessions keep referenced between requests. */
  maxPages: number;
  /** Most sessions open at once (default 256); create and clone past it throw SessionLimitError. */
  maxSessions?: number;
  /** A session with no request for this long (ms) is unpinned (default 5 minutes; Infinity: never). */
  unpinAfterMs?: number;
  /** A session with no request for this long (ms) is destroyed (default Infinity: never). */
  expireAfterMs?: number;
  /** Milliseconds (default performance.now). */
  now?: () => number;
}

export const DEFAULT_MAX_SESSIONS = 256;
export const DEFAULT_SESSION_UNPIN_AFTER_MS = 5 * 60_000;

/** create() or clone() when `maxSessions` sessions are open. */
export class SessionLimitError extends Error {
  constructor(readonly limit: number) {
    super(`${limit} sessions are open, the most allowed: destroy one first (or wait for an idle one to expire)`);
    this.name = 'SessionLimitError';
  }
}

export class SessionRegistry {
  private readonly sessions = new Map<string, KvSession>();
  private clock = 0;
  private nextId = 1;
  /** Sessions unpinned to make room (by the page bound, for running requests, or idle past unpinAfterMs). */
  unpinned = 0;
  /** Sessions destroyed because they were idle past expireAfterMs. */
  expired = 0;
  readonly maxPages: number;
  readonly maxSessions: number;
  readonly unpinAfterMs: number;
  readonly expireAfterMs: number;
  private readonly now: () => number;

  constructor(private readonly kv: KvManager, limits: SessionLimits) {
    this.maxPages = limits.maxPages;
    this.maxSessions = limits.maxSessions ?? DEFAULT_MAX_SESSIONS;
    this.unpinAfterMs = limits.unpinAfterMs ?? DEFAULT_SESSION_UNPIN_AFTER_MS;
    this.expireAfterMs = limits.expireAfterMs ?? Infinity;
    this.now = limits.now ?? (() => performance.now());
    if (!Number.isInteger(this.maxPages) || this.maxPages < 0) throw new Error(`maxSessionPages must be a non-negative integer, got ${this.maxPages}`);
    if (!Number.isInteger(this.maxSessions) || this.maxSessions < 1) throw new Error(`maxSessions must be a positive integer, got ${this.maxSessions}`);
    for (const [name, v] of [['sessionUnpinAfterMs', this.unpinAfterMs], ['sessionExpireAfterMs', this.expireAfterMs]] as const) {
      if (Number.isNaN(v) || v <= 0) throw new Error(`${name} must be a positive number of milliseconds (Infinity: never), got ${v}`);
    }
  }

  get size(): number {
    return this.sessions.size;
  }

  get(id: string): KvSession | undefined {
    this.sweep();
    return this.sessions.get(id);
  }

  /** An empty session; throws SessionLimitError when maxSessions are open. */
  create(salt = ''): KvSession {
    this.sweep();
    if (this.sessions.size >= this.maxSessions) throw new SessionLimitError(this.maxSessions);
    const session = new KvSession(`sess-${this.nextId++}`, salt);
    session.lastUsed = ++this.clock;
    session.lastActiveAt = this.now();
    this.sessions.set(session.id, session);
    return session;
  }

  /** A session holding the same context as `id`, sharing every page (nothing is computed); throws SessionLimitError when maxSessions are open. */
  clone(id: string): KvSession {
    const parent = this.require(id);
    const child = this.create(parent.salt);
    parent.lastActiveAt = child.lastActiveAt;
    const src = parent.context;
    child.context = new KvContext(src.tokens, src.salt);
    child.context.pageHashes.push(...src.pageHashes);
    this.kv.share(src, child.context, src.numComputed);
    child.tokenCount = parent.tokenCount;
    parent.lastUsed = child.lastUsed = ++this.clock;
    this.enforceBound(child);
    return child;
  }

  /** Releases the session's pages; false if there is no such session. */
  destroy(id: string): boolean {
    const session = this.sessions.get(id);
    if (!session) return false;
    this.kv.free(session.context);
    this.sessions.delete(id);
    return true;
  }

  info(id: string): SessionInfo | undefined {
    const s = this.get(id);
    return s && { id: s.id, tokens: s.tokenCount, pages: s.context.blockTable.length, pinned: s.pinned };
  }

  /** Every session's context (owners of pages, for invariant checks). */
  contexts(): KvContext[] {
    return [...this.sessions.values()].map((s) => s.context);
  }

  /** Distinct pages the sessions reference. */
  heldPages(): number {
    const pages = new Set<number>();
    for (const s of this.sessions.values()) for (const p of s.context.blockTable) pages.add(p);
    return pages.size;
  }

  /**
   * How much of `seq`'s tokens the session's context can give it: the longest common prefix,
   * at most all but the last token (which is computed to sample from). 0 when unpinned.
   */
  commonPrefix(session: KvSession, seq: Sequence): number {
    const ctx = session.context;
    const limit = Math.min(ctx.numComputed, seq.numTokens - 1);
    let n = 0;
    while (n < limit && ctx.tokens[n] === seq.tokens[n]) n++;
    return n;
  }

  /** A request on the session is queued: the session is not idle until it ends (adopt). */
  requestQueued(session: KvSession): void {
    session.requests++;
    session.lastActiveAt = this.now();
  }

  /**
   * Unpins sessions idle (no request queued or running) for unpinAfterMs and destroys those idle
   * for expireAfterMs. Cheap (one pass over the sessions); run whenever a step is built.
   */
  sweep(): void {
    const now = this.now();
    for (const s of [...this.sessions.values()]) {
      if (s.requests > 0) continue;
      const idle = now - s.lastActiveAt;
      if (idle >= this.expireAfterMs) {
        this.destroy(s.id);
        this.expired++;
      } else if (idle >= this.unpinAfterMs && s.pinned) {
        this.unpin(s);
      }
    }
  }

  /** The sequence takes the first `tokens` tokens of its session's context (a reference to each page). */
  startFrom(session: KvSession, seq: Sequence, tokens: number): void {
    this.kv.share(session.context, seq.kv, tokens);
    seq.sessionTokens = tokens;
    session.lastUsed = ++this.clock;
  }

  /**
   * A sequence of the session ends (its pages are still held): the session holds its computed
   * context instead, unless the sequence computed less than it took from the session (an abort
   * before it went on), when the session keeps what it had.
   */
  adopt(seq: Sequence): void {
    const session = seq.session;
    if (session) {
      session.requests = Math.max(0, session.requests - 1);
      session.lastActiveAt = this.now();
    }
    if (!session || !this.sessions.has(session.id) || seq.numComputed === 0 || seq.numComputed < seq.sessionTokens) return;
    const n = seq.numComputed;
    const next = new KvContext(seq.tokens.slice(0, n), session.salt);
    next.pageHashes.push(...seq.kv.pageHashes.slice(0, Math.floor(n / this.kv.pageSize)));
    this.kv.share(seq.kv, next, n);
    this.kv.free(session.context);
    session.context = next;
    session.tokenCount = n;
    session.lastUsed = ++this.clock;
    this.enforceBound(session);
  }

  /**
   * Unpins the least recently used pinned session (its pages go back to the prefix cache, or
   * free); false when no session is pinned.
   */
  unpinLeastRecent(except?: KvSession): boolean {
    let oldest: KvSession | null = null;
    for (const s of this.sessions.values()) if (s.pinned && s !== except && (!oldest || s.lastUsed < oldest.lastUsed)) oldest = s;
    if (!oldest) return false;
    this.unpin(oldest);
    return true;
  }

  private unpin(session: KvSession): void {
    this.kv.free(session.context);
    session.context = new KvContext([], session.salt);
    this.unpinned++;
  }

  /** Unpins least recently used sessions (`keep` last) while the sessions hold more than maxPages pages. */
  private enforceBound(keep: KvSession): void {
    while (this.heldPages() > this.maxPages) {
      if (!this.unpinLeastRecent(keep) && !this.unpinLeastRecent()) return;
    }
  }

  private require(id: string): KvSession {
    const session = this.get(id);
    if (!session) throw new Error(`no session ${id}`);
    return session;
  }
}
