// The context store wired to the prefix cache (issue 14): a tier of KV pages below GPU memory.
// Writes: every full page the prefix cache indexes (its chained hash known) and the store does
// not hold yet is queued; after the step that filled it, the loop records its conversion to the
// store format and the copy into a staging buffer (GPU queue order: before any later step could
// reuse the page) and goes on; the readback and the put complete behind (write-behind).
// Reads: a new request whose prompt continues past what GPU memory caches, with pages the store
// holds, waits (others run) while those records are read and checked; between steps they are
// uploaded, converted into the live format in free pages and indexed as if computed, so the
// request takes them from the prefix cache like any cached prefix (counted as cached_tokens).
// Keeping (keep()): every full page of a context the app names is made sure to be in the store
// (written from GPU memory, or computed first) and pinned there against the byte budget.
import type { KvCache, KvContext, KvManager } from '../kv/index.js';
import { compressKvPages, isQuantizedKv, restoreKvPages, tokenizerFingerprint, type KvFormat, type Model } from '../model/index.js';
import { ContextStore, DEFAULT_DATABASE, DEFAULT_MAX_BYTES, DirectoryBackend, IndexedDbBackend, type ContextStoreMetrics, type ContextStoreUsage, type KeptContext, type PageRecord, type StoredRecord, type StoreBackend, type StoreWarning } from '../persist/index.js';
import { recordIdentity } from '../persist/record.js';
import type { Sequence } from '../scheduler/index.js';

export interface ContextStoreConfig {
  /**
   * 'directory' (Node: one file per page record under `path`), 'indexeddb' (browsers: the
   * database named `path`, default 'wgserve-contexts'), 'none'.
   */
  kind: 'indexeddb' | 'directory' | 'none';
  path?: string;
  /** Bytes the records may take (default 256 MiB); least recently used records go first. */
  maxBytes?: number;
  /** Format of stored pages (default q8_0, or f16 when the head dimension is not a multiple of 32). */
  format?: KvFormat;
  /** Storage of your own instead of `kind`'s (e.g. a wrapper that reports its own quota). */
  backend?: StoreBackend;
  /** Dropped records, stopped writes (default: console.warn). Each is also counted in the metrics. */
  onWarning?: (warning: StoreWarning) => void;
  /**
   * Browsers: ask for persistent storage (navigator.storage.persist()), so the browser does not
   * clear the records under storage pressure (default false; the browser may ask the user).
   */
  persist?: boolean;
}

export interface ContextStoreStats extends ContextStoreMetrics, ContextStoreUsage {
  kind: 'indexeddb' | 'directory';
  format: KvFormat;
  /** Requests whose prefix came (partly) from the store, and the pages restored for them. */
  restores: number;
  pagesRestored: number;
  /** Pages that could not be compressed or restored on the GPU (the request prefilled instead). */
  transferErrors: number;
  /** Pages filled and not in the store yet (being compressed, read back or written). */
  pendingWrites: number;
  /** Browsers: whether storage is persistent (navigator.storage.persisted()); null elsewhere. */
  persisted: boolean | null;
}

interface PendingWrite {
  page: number;
  record: Omit<PageRecord, 'k' | 'v'>;
}

/** What keep() needs of the step loop. */
export interface KeepDriver {
  /** Runs `job` between steps (no step half-recorded), on the current model and KV cache. */
  betweenSteps<T>(job: (model: Model, cache: KvCache) => T): Promise<T>;
  /** Computes the KV of `ids` under the salt (a prefill-only request); resolves when it is done. */
  prefill(ids: number[]): Promise<void>;
}

interface Loaded {
  seq: Sequence;
  /** Page index of the first record. */
  first: number;
  records: PageRecord[];
}

export class ContextTier {
  private queued: PendingWrite[] = [];
  private readonly writing = new Set<Promise<void>>();
  private readonly loading = new Set<Promise<void>>();
  private ready: Loaded[] = [];
  private restores = 0;
  private pagesRestored = 0;
  private transferErrors = 0;
  private compressingPages = 0;
  private persisted: boolean | null = null;

  private constructor(readonly store: ContextStore, readonly kind: 'indexeddb' | 'directory', readonly format: KvFormat, private readonly kv: KvManager, private readonly warn: (w: StoreWarning) => void) {
    kv.onIndexed = (page, ctx, index) => this.indexed(page, ctx, index);
  }

  /** The tier `config` asks for over the model's pages (null for 'none'). */
  static async open(config: ContextStoreConfig, model: Model, cache: KvCache, kv: KvManager): Promise<ContextTier | null> {
    if (config.kind === 'none' && !config.backend) return null;
    if (!['indexeddb', 'directory', 'none'].includes(config.kind)) throw new Error(`contextStore.kind must be 'indexeddb', 'directory' or 'none', got ${JSON.stringify(config.kind)}`);
    if (!kv.cache.enabled) throw new Error('contextStore needs the prefix cache (prefixCache: false turns it off)');
    const c = model.config;
    const format = config.format ?? (c.headDim % 32 === 0 ? 'q8_0' : 'f16');
    if (isQuantizedKv(format) && c.headDim % 32 !== 0) throw new Error(`contextStore.format ${format}: the head dimension ${c.headDim} is not a multiple of 32`);
    const layout = { layers: c.layerCount, numKvHeads: c.kvHeadCount, headDim: c.headDim, pageSize: cache.pageSize, format };
    const identity = recordIdentity(model.fingerprint, await tokenizerFingerprint(model.header), layout);
    let backend = config.backend;
    if (!backend && config.kind === 'directory') {
      if (!config.path) throw new Error("contextStore: kind 'directory' needs a path");
      backend = await DirectoryBackend.open(config.path);
    }
    backend ??= await IndexedDbBackend.open(config.path ?? DEFAULT_DATABASE);
    const warn = config.onWarning ?? ((w: StoreWarning) => console.warn(`wgserve: context store: ${w.kind === 'record-dropped' ? `record ${w.key}: ${w.message}` : w.message}`));
    const storage = backend.kind === 'indexeddb' ? browserStorage() : null;
    if (storage && config.persist) await storage.persist?.().catch(() => false);
    const maxBytes = storage ? await quotaBudget(storage, backend, config.maxBytes ?? DEFAULT_MAX_BYTES) : config.maxBytes;
    const store = await ContextStore.open(backend, identity, { maxBytes, onWarning: warn });
    const tier = new ContextTier(store, backend.kind, format, kv, warn);
    tier.persisted = storage?.persisted ? await storage.persisted().catch(() => null) : null;
    return tier;
  }

  /** Whether some request waits for records being read. */
  get isLoading(): boolean {
    return this.loading.size > 0;
  }

  /** Whether records read are waiting to be restored (restoreReady). */
  get hasReady(): boolean {
    return this.ready.length > 0;
  }

  /** Resolves when one of the reads in progress is done. */
  async loaded(): Promise<void> {
    if (this.loading.size) await Promise.race(this.loading);
  }

  private indexed(page: number, ctx: KvContext, index: number): void {
    const key = ctx.pageHashes[index];
    if (this.store.has(key) || !this.store.usage().writing) return;
    const ps = this.kv.pageSize;
    this.queued.push({ page, record: { key, parent: index === 0 ? null : ctx.pageHashes[index - 1], tokens: Int32Array.from(ctx.tokens.slice(index * ps, (index + 1) * ps)) } });
  }

  /**
   * Records the compression of the pages indexed since the last call (call between steps, before
   * anything can reuse them) and returns: the readback and the store's write follow behind.
   */
  writeIndexed(model: Model, cache: KvCache): void {
    const batch = this.queued.filter((w, i, all) => !this.store.has(w.record.key) && all.findIndex((o) => o.record.key === w.record.key) === i);
    this.queued = [];
    if (!batch.length) return;
    this.compressingPages += batch.length;
    const done = compressKvPages(model.rt, cache.layout, cache, batch.map((w) => w.page), { format: this.format })
      .finally(() => (this.compressingPages -= batch.length))
      .then((pages) => pages.forEach((bytes, i) => this.store.put({ ...batch[i].record, ...bytes })))
      .catch((e: unknown) => {
        this.transferErrors += batch.length;
        this.warn({ kind: 'write-failed', message: `compressing ${batch.length} pages failed: ${(e as Error).message}` });
      })
      .finally(() => this.writing.delete(done));
    this.writing.add(done);
  }

  /** Forgets queued writes (their pages' contents are gone with a lost device). */
  dropQueued(): void {
    this.queued = [];
  }

  /**
   * A new request (added to the scheduler, no pages yet): if the store holds the pages that follow
   * its prefix cached in GPU memory, it waits while they are read and checked.
   */
  lookup(seq: Sequence): void {
    if (seq.leader) return;
    const ctx = seq.kv;
    const cache = this.kv.cache;
    const maxPages = Math.floor((ctx.tokens.length - 1) / this.kv.pageSize);
    const first = cache.matchPrefix(ctx.tokens, ctx.salt, ctx.pageHashes, maxPages).pages.length;
    const keys: string[] = [];
    for (let i = first; i < maxPages; i++) {
      const key = cache.pageHash(ctx.tokens, ctx.salt, ctx.pageHashes, i);
      if (!this.store.has(key)) break;
      keys.push(key);
    }
    if (!keys.length) return;
    seq.restoring = true;
    const done = this.load(seq, first, keys).finally(() => this.loading.delete(done));
    this.loading.add(done);
  }

  private async load(seq: Sequence, first: number, keys: string[]): Promise<void> {
    const records: PageRecord[] = [];
    try {
      const got = await Promise.all(keys.map((key) => this.store.get(key)));
      for (const [i, r] of got.entries()) {
        if (!r || !this.continues(r, seq.kv, first + i)) break;
        records.push(r);
      }
    } catch (e) {
      this.warn({ kind: 'write-failed', message: `reading records failed: ${(e as Error).message}` });
    }
    this.ready.push({ seq, first, records });
  }

  /** A record is page `index` of the context only if its parent and token ids say so too (not just its hash). */
  private continues(r: PageRecord, ctx: KvContext, index: number): boolean {
    const ps = this.kv.pageSize;
    if (r.parent !== (index === 0 ? null : ctx.pageHashes[index - 1])) return false;
    for (let j = 0; j < ps; j++) if (r.tokens[j] !== ctx.tokens[index * ps + j]) return false;
    return true;
  }

  /**
   * Between steps: the records read are uploaded and converted into the live format in pages of
   * their own, indexed as if computed; their requests may start. A request whose pages cannot be
   * had (pool short, its GPU prefix evicted meanwhile) or restored prefills instead.
   */
  async restoreReady(model: Model, cache: KvCache): Promise<void> {
    const ready = this.ready;
    this.ready = [];
    for (const { seq, first, records } of ready) {
      seq.restoring = false;
      if (seq.status !== 'waiting' || !records.length) continue;
      const pages = this.kv.takePagesFor(seq.kv, first, records.length);
      if (!pages) continue;
      try {
        await restoreKvPages(model.rt, cache.layout, cache, pages, { format: this.format }, records);
      } catch (e) {
        this.kv.pool.release(pages);
        this.transferErrors += pages.length;
        this.warn({ kind: 'write-failed', message: `restoring ${pages.length} pages failed: ${(e as Error).message}` });
        continue;
      }
      const adopted = this.kv.adoptPages(seq.kv, first, pages);
      this.pagesRestored += adopted;
      if (adopted) this.restores++;
    }
  }

  stats(): ContextStoreStats {
    return { ...this.store.metrics, ...this.store.usage(), kind: this.kind, format: this.format, restores: this.restores, pagesRestored: this.pagesRestored, transferErrors: this.transferErrors,
      pendingWrites: this.queued.length + this.compressingPages + this.store.pendingCount, persisted: this.persisted };
  }

  list(): StoredRecord[] {
    return this.store.list();
  }

  /**
   * Keeps the full pages of `tokens` (under `salt`) in the store: pinned first (the budget then
   * evicts other records for them), the ones the store lacks are written from GPU memory, or,
   * if GPU memory lacks some too, the context is computed (restoring what the store has) and
   * written. Resolves once every page is written; throws (and keeps nothing new) if some cannot
   * be (storage full, or the budget taken by kept contexts). The partial last page is not kept.
   */
  async keep(tokens: readonly number[], salt: string, driver: KeepDriver): Promise<KeptContext> {
    const ps = this.kv.pageSize;
    const ids = tokens.slice(0, Math.floor(tokens.length / ps) * ps);
    if (!ids.length) throw new Error(`a context to keep needs at least one full page (${ps} tokens); it has ${tokens.length}`);
    const keys: string[] = [];
    this.kv.cache.pageHash(ids, salt, keys, ids.length / ps - 1);
    const kept: KeptContext = { id: keys.at(-1)!, keys, tokens: ids.length, keptAt: Date.now() };
    const renewed = this.store.kept().some((k) => k.id === kept.id);
    await this.store.keep(kept);
    try {
      let missing = await driver.betweenSteps((model, cache) => this.writeCached(model, cache, ids, salt));
      if (missing) {
        await driver.prefill(ids);
        await this.drain();
        missing = await driver.betweenSteps((model, cache) => this.writeCached(model, cache, ids, salt));
      }
      await this.drain();
      const absent = keys.filter((k) => !this.store.holds(k)).length;
      if (absent) {
        const why = !this.store.usage().writing ? 'storage is full'
          : missing ? 'GPU memory evicted some of them before they were written (try again)'
          : `the byte budget (maxBytes ${this.store.maxBytes}) is too small next to the contexts kept`;
        throw new Error(`${absent} of ${keys.length} pages of the context could not be stored: ${why}`);
      }
      return kept;
    } catch (e) {
      if (!renewed) await this.store.release(kept.id).catch(() => {});
      throw e;
    }
  }

  /**
   * Between steps: records the compression of the full pages of `ids` the store lacks and the
   * prefix cache holds (as writeIndexed does); returns how many the store lacks and GPU memory too.
   */
  private writeCached(model: Model, cache: KvCache, ids: readonly number[], salt: string): number {
    const ps = this.kv.pageSize;
    const hashes: string[] = [];
    const n = ids.length / ps;
    const pages = this.kv.cache.matchPrefix(ids, salt, hashes, n).pages;
    this.kv.cache.pageHash(ids, salt, hashes, n - 1);
    let missing = 0;
    for (let i = 0; i < n; i++) {
      if (this.store.has(hashes[i])) continue;
      if (i >= pages.length) {
        missing++;
        continue;
      }
      this.queued.push({ page: pages[i], record: { key: hashes[i], parent: i === 0 ? null : hashes[i - 1], tokens: Int32Array.from(ids.slice(i * ps, (i + 1) * ps)) } });
    }
    this.writeIndexed(model, cache);
    return missing;
  }

  /** Waits for the compressions in flight (while the KV cache still exists) and the writes behind them. */
  async drain(): Promise<void> {
    while (this.writing.size) await Promise.all(this.writing);
    await this.store.flush();
  }

  async close(): Promise<void> {
    this.kv.onIndexed = null;
    await this.drain();
    await this.store.close();
  }
}

type BrowserStorage = Pick<StorageManager, 'estimate'> & Partial<Pick<StorageManager, 'persist' | 'persisted'>>;

function browserStorage(): BrowserStorage | null {
  const storage = (globalThis as { navigator?: { storage?: BrowserStorage } }).navigator?.storage;
  return storage?.estimate ? storage : null;
}

/**
 * The byte budget under the origin's quota (navigator.storage.estimate()): the records already
 * stored plus 80% of what the quota leaves free (the model's cached weights count against it too).
 */
export async function quotaBudget(storage: BrowserStorage, backend: StoreBackend, requested: number): Promise<number> {
  const { quota, usage } = await storage.estimate().catch(() => ({ quota: undefined, usage: undefined }));
  if (!quota) return requested;
  const own = (await backend.list()).reduce((n, m) => n + m.bytes, 0);
  return Math.min(requested, Math.floor(own + Math.max(0, quota - (usage ?? 0)) * 0.8));
}
