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

export interface StoreBackend {
  readonly kind: 'indexeddb' | 'directory';
  /** Writes `puts` and removes `deletes` together (one transaction where the backend has them). */
  commit(puts: { key: string; bytes: Uint8Array; lastUsed: number }[], deletes: string[]): Promise<void>;
  /** A record's bytes, or null if there is none. */
  read(key: string): Promise<Uint8Array | null>;
  /** Marks records as used at `time`. */
  touch(keys: string[], time: number): Promise<void>;
  list(): Promise<RecordMeta[]>;
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
