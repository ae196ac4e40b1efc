// Where the context store keeps its records: IndexedDB in browsers (indexeddb-backend.ts), a
// directory in Node (directory-backend.ts). Records are content-addressed (a key names one page
// of one model), so two writers putting the same key write the same bytes.

/** A stored record's bookkeeping. */
export interface RecordMeta {
  key: string;
  bytes: number;
  /** When the record was last written or read (ms since the epoch): least recent goes first. */
  lastUsed: number;
}

/**
 * A context an app asked to keep (engine.contexts.keep): its records are exempt from the byte
 * budget's eviction until it is released. `id` is the key of its last page (a chained hash: it
 * names the whole context, model and cache_salt included).
 */
export interface KeptContext {
  id: string;
  /** Keys of its pages, in order. */
  keys: string[];
  /** Tokens those pages hold. */
  tokens: number;
  /** When it was kept (ms since the epoch). */
  keptAt: number;
}

export interface StoreBackend {
  readonly kind: 'indexeddb' | 'directory';
  /** Writes `puts` and removes `deletes` together (one transaction where the backend has them). */
  commit(puts: { key: string; bytes: Uint8Array; lastUsed: number }[], deletes: string[]): Promise<void>;
  /** A record's bytes, or null if there is none. */
  read(key: string): Promise<Uint8Array | null>;
  /** Marks records as used at `time`. */
  touch(keys: string[], time: number): Promise<void>;
  list(): Promise<RecordMeta[]>;
  /**
   * Kept contexts, one entry each (so two writers keeping different contexts never clobber each
   * other). Optional: a backend without them keeps them in memory only (lost on restart).
   */
  listKept?(): Promise<KeptContext[]>;
  putKept?(kept: KeptContext): Promise<void>;
  deleteKept?(ids: string[]): Promise<void>;
  close(): void;
}

/** Keys are page hashes: hex digits only, so they are safe as file names and database keys. */
export function checkRecordKey(key: string): void {
  if (!/^[0-9a-f]{8,128}$/.test(key)) throw new Error(`context store: key "${key.slice(0, 40)}" is not a page hash (hex digits)`);
}

/** Whether a backend error means the storage is full (stop writing; serving goes on). */
export function isQuotaError(error: unknown): boolean {
  const e = error as { name?: string; code?: string } | null;
  return e?.name === 'QuotaExceededError' || e?.code === 'ENOSPC' || e?.code === 'EDQUOT';
}

/** A kept context read back from storage, or null if it is not one (skipped, never trusted). */
export function checkKept(value: unknown): KeptContext | null {
  const k = value as Partial<KeptContext> | null;
  const hex = (x: unknown) => typeof x === 'string' && /^[0-9a-f]{8,128}$/.test(x);
  if (!k || !hex(k.id) || !Array.isArray(k.keys) || !k.keys.length || !k.keys.every(hex) || k.keys.at(-1) !== k.id) return null;
  if (!Number.isInteger(k.tokens) || typeof k.keptAt !== 'number') return null;
  return { id: k.id as string, keys: [...k.keys], tokens: k.tokens as number, keptAt: k.keptAt };
}
