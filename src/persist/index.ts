// The context store (issue 14): KV pages kept below GPU memory, keyed by chained page hashes.
// The directory backend loads node:fs only when opened (Node), so this index is browser-safe.
export { ContextStore, DEFAULT_MAX_BYTES, type ContextStoreMetrics, type ContextStoreOptions, type ContextStoreUsage, type StoredRecord, type StoreWarning } from './context-store.js';
export { type KeptContext, type RecordMeta, type StoreBackend } from './backend.js';
export { DirectoryBackend } from './directory-backend.js';
export { IndexedDbBackend, DEFAULT_DATABASE } from './indexeddb-backend.js';
export { decodeRecord, encodeRecord, RecordError, RECORD_VERSION, type PageRecord, type RecordIdentity, type RecordProblem, type StoredLayout } from './record.js';
export { crc32 } from './crc32.js';
