// The context store: a tier below GPU memory for KV pages, keyed by the prefix cache's chained
// page hashes. put() never waits: records are encoded and queued, and written behind, every
// queued record in one backend transaction (write-behind). A byte budget evicts the least
// recently used records in that same transaction. get() checks the whole record (decodeRecord)
// and deletes one that fails, with a warning and a metric: a bad record is never handed out.
// A full storage (QuotaExceededError, ENOSPC) stops writing; reading and serving go on.
// Kept contexts (keep()) pin their records: the budget evicts every other record first.
import { isQuotaError, type KeptContext, type RecordMeta, type StoreBackend } from './backend.js';
import { decodeRecord, encodeRecord, RecordError, type PageRecord, type RecordIdentity, type RecordProblem } from './record.js';

export interface ContextStoreOptions {
  /** Bytes the records may take in all (default 256 MiB). */
  maxBytes?: number;
  /** Warnings: records dropped as bad, writes stopped. Default: console.warn. */
  onWarning?: (warning: StoreWarning) => void;
  /** The clock (ms), for tests. */
  now?: () => number;
}

export type StoreWarning =
  | { kind: 'record-dropped'; key: string; problem: RecordProblem; message: string }
  | { kind: 'writes-stopped'; message: string }
  | { kind: 'write-failed'; message: string };

export interface ContextStoreMetrics {
  pagesWritten: number;
  bytesWritten: number;
  pagesRead: number;
  bytesRead: number;
  /** Records that failed a check on load (deleted, never used). */
  recordsDropped: number;
  /** Records evicted for the byte budget. */
  recordsEvicted: number;
  writeErrors: number;
}

export interface ContextStoreUsage {
  records: number;
  bytes: number;
  maxBytes: number;
  writing: boolean;
  /** Contexts kept (keep()), and the bytes of their records, which the budget does not evict. */
  keptContexts: number;
  keptBytes: number;
}

/** A record as list() gives it: its bookkeeping, and whether a kept context pins it. */
export interface StoredRecord extends RecordMeta {
  kept: boolean;
}

export const DEFAULT_MAX_BYTES = 256 * 2 ** 20;

export class ContextStore {
  readonly metrics: ContextStoreMetrics = { pagesWritten: 0, bytesWritten: 0, pagesRead: 0, bytesRead: 0, recordsDropped: 0, recordsEvicted: 0, writeErrors: 0 };
  readonly maxBytes: number;
  /** Known records in least-recently-used order (a Map keeps insertion order: re-inserted on use). */
  private readonly index = new Map<string, RecordMeta>();
  private bytes = 0;
  private pending = new Map<string, Uint8Array>();
  /** Records in the backend transaction under way (indexed once it ends). */
  private committing = new Map<string, Uint8Array>();
  private flushing: Promise<void> | null = null;
  private writing = true;
  private readonly warn: (w: StoreWarning) => void;
  private readonly now: () => number;
  private readonly keptContexts = new Map<string, KeptContext>();
  /** Keys of kept contexts' records, with how many kept contexts name each. */
  private readonly pinned = new Map<string, number>();

  private constructor(private readonly backend: StoreBackend, readonly identity: RecordIdentity, options: ContextStoreOptions) {
    this.maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
    this.warn = options.onWarning ?? ((w) => console.warn(`wgserve: context store: ${w.kind === 'record-dropped' ? `${w.key}: ${w.message}` : w.message}`));
    this.now = options.now ?? Date.now;
  }

  /** A store over `backend`'s records (listed once here; this store's own writes keep the list). */
  static async open(backend: StoreBackend, identity: RecordIdentity, options: ContextStoreOptions = {}): Promise<ContextStore> {
    const store = new ContextStore(backend, identity, options);
    const metas = (await backend.list()).sort((a, b) => a.lastUsed - b.lastUsed);
    for (const m of metas) store.remember(m);
    for (const k of (await backend.listKept?.()) ?? []) store.pin(k);
    return store;
  }

  private pin(k: KeptContext): void {
    this.keptContexts.set(k.id, k);
    for (const key of new Set(k.keys)) this.pinned.set(key, (this.pinned.get(key) ?? 0) + 1);
  }

  private unpin(id: string): boolean {
    const k = this.keptContexts.get(id);
    if (!k) return false;
    this.keptContexts.delete(id);
    for (const key of new Set(k.keys)) {
      const n = (this.pinned.get(key) ?? 0) - 1;
      if (n > 0) this.pinned.set(key, n);
      else this.pinned.delete(key);
    }
    return true;
  }

  /**
   * Keeps a context: its records (written or to be written) are not evicted for the budget until
   * release(). Stored with the records (the backend's putKept), so it outlives a restart. Keeping
   * the same context again renews it.
   */
  async keep(k: KeptContext): Promise<void> {
    this.unpin(k.id);
    this.pin(k);
    await this.backend.putKept?.(k);
  }

  /** Ends keeping a context (its records go back to plain LRU); false if it was not kept. */
  async release(id: string): Promise<boolean> {
    if (!this.unpin(id)) return false;
    await this.backend.deleteKept?.([id]);
    return true;
  }

  /** Contexts kept, oldest first. */
  kept(): KeptContext[] {
    return [...this.keptContexts.values()].sort((a, b) => a.keptAt - b.keptAt);
  }

  /** Whether a record is written (not only queued) under `key`. */
  holds(key: string): boolean {
    return this.index.has(key);
  }

  private remember(m: RecordMeta): void {
    const old = this.index.get(m.key);
    if (old) {
      this.bytes -= old.bytes;
      this.index.delete(m.key);
    }
    this.index.set(m.key, m);
    this.bytes += m.bytes;
  }

  private forget(key: string): void {
    const old = this.index.get(key);
    if (!old) return;
    this.bytes -= old.bytes;
    this.index.delete(key);
  }

  /** Records queued or being written, not written yet. */
  get pendingCount(): number {
    return this.pending.size + this.committing.size;
  }

  /** Whether a record is stored (or queued) under `key`: cheap, for the prefix walk. */
  has(key: string): boolean {
    return this.pending.has(key) || this.committing.has(key) || this.index.has(key);
  }

  /**
   * Queues a page for writing and returns at once; the write happens behind (flush() waits for
   * it). A page already stored is only marked used.
   */
  put(record: PageRecord): void {
    if (!this.writing || this.pending.has(record.key) || this.committing.has(record.key)) return;
    if (this.index.has(record.key)) {
      this.markUsed(record.key);
      return;
    }
    this.pending.set(record.key, encodeRecord(this.identity, record));
    this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushing) return;
    this.flushing = (async () => {
      // Let the caller's step go on: everything put until the next macrotask joins this batch.
      await new Promise((resolve) => setTimeout(resolve, 0));
      while (this.pending.size > 0 && this.writing) await this.writeBatch();
      this.pending.clear();
    })().finally(() => (this.flushing = null));
  }

  /** Resolves when every queued record is written (or dropped because writing stopped). */
  async flush(): Promise<void> {
    while (this.flushing) await this.flushing;
  }

  private async writeBatch(): Promise<void> {
    const batch = [...this.pending].filter(([, bytes]) => bytes.length <= this.maxBytes);
    this.pending = new Map();
    if (batch.length === 0) return;
    const time = this.now();
    const incoming = batch.reduce((n, [, b]) => n + b.length, 0);
    const evict: string[] = [];
    let bytes = this.bytes;
    for (const key of this.index.keys()) {
      if (bytes + incoming <= this.maxBytes) break;
      if (this.pinned.has(key)) continue;
      evict.push(key);
      bytes -= this.index.get(key)!.bytes;
    }
    // Records that still do not fit (a batch larger than the budget) are left out, oldest first.
    let kept = batch;
    let keptBytes = incoming;
    while (bytes + keptBytes > this.maxBytes && kept.length > 0) {
      keptBytes -= kept[0][1].length;
      kept = kept.slice(1);
    }
    this.committing = new Map(kept);
    try {
      await this.backend.commit(kept.map(([key, b]) => ({ key, bytes: b, lastUsed: time })), evict);
    } catch (e) {
      this.metrics.writeErrors++;
      if (isQuotaError(e)) {
        this.writing = false;
        this.warn({ kind: 'writes-stopped', message: `storage is full (${(e as Error).name}): no more writes, serving goes on` });
      } else {
        this.warn({ kind: 'write-failed', message: `writing ${kept.length} records failed: ${(e as Error).message}` });
      }
      return;
    } finally {
      this.committing = new Map();
    }
    for (const key of evict) this.forget(key);
    this.metrics.recordsEvicted += evict.length;
    for (const [key, b] of kept) {
      this.remember({ key, bytes: b.length, lastUsed: time });
      this.metrics.pagesWritten++;
      this.metrics.bytesWritten += b.length;
    }
  }

  private markUsed(key: string): void {
    const m = this.index.get(key);
    if (!m) return;
    const time = this.now();
    this.remember({ ...m, lastUsed: time });
    void this.backend.touch([key], time).catch(() => {});
  }

  /**
   * The page stored under `key`, checked whole; null if there is none or it failed a check (then
   * it is deleted, with a warning and recordsDropped counted).
   */
  async get(key: string): Promise<PageRecord | null> {
    const queued = this.pending.get(key) ?? this.committing.get(key);
    const bytes = queued ?? (await this.backend.read(key));
    if (!bytes) {
      this.forget(key);
      return null;
    }
    try {
      const record = decodeRecord(bytes, this.identity, key);
      this.metrics.pagesRead++;
      this.metrics.bytesRead += bytes.length;
      this.markUsed(key);
      return record;
    } catch (e) {
      if (!(e instanceof RecordError)) throw e;
      await this.drop(key, e);
      return null;
    }
  }

  private async drop(key: string, error: RecordError): Promise<void> {
    this.metrics.recordsDropped++;
    this.forget(key);
    this.pending.delete(key);
    this.warn({ kind: 'record-dropped', key, problem: error.problem, message: error.message });
    await this.backend.commit([], [key]).catch(() => {});
  }

  usage(): ContextStoreUsage {
    let keptBytes = 0;
    for (const key of this.pinned.keys()) keptBytes += this.index.get(key)?.bytes ?? 0;
    return { records: this.index.size, bytes: this.bytes, maxBytes: this.maxBytes, writing: this.writing, keptContexts: this.keptContexts.size, keptBytes };
  }

  /** Stored records, least recently used first. */
  list(): StoredRecord[] {
    return [...this.index.values()].map((m) => ({ ...m, kept: this.pinned.has(m.key) }));
  }

  /** Deletes records; kept contexts that held one of them are released (they are no longer whole). */
  async delete(keys: string[]): Promise<void> {
    await this.flush();
    await this.backend.commit([], keys);
    for (const key of keys) this.forget(key);
    const gone = new Set(keys);
    for (const k of this.kept()) if (k.keys.some((key) => gone.has(key))) await this.release(k.id);
  }

  /** Deletes every record and releases every kept context. */
  async clear(): Promise<void> {
    await this.delete([...this.index.keys()]);
    for (const k of this.kept()) await this.release(k.id);
  }

  async close(): Promise<void> {
    await this.flush();
    this.backend.close();
  }
}
