// The context store in IndexedDB (page, Web Worker, Service Worker), through `idb`. Two object
// stores written in one transaction: 'records' (key -> bytes) and 'meta' (key, bytes, lastUsed;
// indexed by lastUsed). A transaction is atomic, so a reader in another tab or in the Service
// Worker sees a whole record with its meta, or neither.
import { openDB, type DBSchema, type IDBPDatabase } from 'idb';
import { checkKept, checkRecordKey, type KeptContext, type RecordMeta, type StoreBackend } from './backend.js';

interface ContextDb extends DBSchema {
  records: { key: string; value: Uint8Array };
  meta: { key: string; value: RecordMeta; indexes: { lastUsed: number } };
  kept: { key: string; value: KeptContext };
}

export const DEFAULT_DATABASE = 'wgserve-contexts';

export class IndexedDbBackend implements StoreBackend {
  readonly kind = 'indexeddb';

  private constructor(private readonly db: IDBPDatabase<ContextDb>) {}

  static async open(name = DEFAULT_DATABASE): Promise<IndexedDbBackend> {
    // Version 2 adds 'kept' (contexts an app keeps); records of version 1 databases stay.
    const db = await openDB<ContextDb>(name, 2, {
      upgrade(d, oldVersion) {
        if (oldVersion < 1) {
          d.createObjectStore('records');
          d.createObjectStore('meta', { keyPath: 'key' }).createIndex('lastUsed', 'lastUsed');
        }
        if (oldVersion < 2) d.createObjectStore('kept', { keyPath: 'id' });
      },
    });
    return new IndexedDbBackend(db);
  }

  async commit(puts: { key: string; bytes: Uint8Array; lastUsed: number }[], deletes: string[]): Promise<void> {
    const tx = this.db.transaction(['records', 'meta'], 'readwrite');
    const records = tx.objectStore('records');
    const meta = tx.objectStore('meta');
    const ops: Promise<unknown>[] = [];
    for (const p of puts) {
      checkRecordKey(p.key);
      ops.push(records.put(p.bytes, p.key), meta.put({ key: p.key, bytes: p.bytes.length, lastUsed: p.lastUsed }));
    }
    for (const key of deletes) ops.push(records.delete(key), meta.delete(key));
    await Promise.all([...ops, tx.done]);
  }

  async read(key: string): Promise<Uint8Array | null> {
    checkRecordKey(key);
    const bytes = await this.db.get('records', key);
    return bytes ? new Uint8Array(bytes) : null;
  }

  async touch(keys: string[], time: number): Promise<void> {
    const tx = this.db.transaction('meta', 'readwrite');
    for (const key of keys) {
      const m = await tx.store.get(key);
      if (m) await tx.store.put({ ...m, lastUsed: time });
    }
    await tx.done;
  }

  list(): Promise<RecordMeta[]> {
    return this.db.getAll('meta');
  }

  async listKept(): Promise<KeptContext[]> {
    return (await this.db.getAll('kept')).map(checkKept).filter((k) => k !== null);
  }

  async putKept(kept: KeptContext): Promise<void> {
    await this.db.put('kept', kept);
  }

  async deleteKept(ids: string[]): Promise<void> {
    const tx = this.db.transaction('kept', 'readwrite');
    await Promise.all([...ids.map((id) => tx.store.delete(id)), tx.done]);
  }

  close(): void {
    this.db.close();
  }
}
