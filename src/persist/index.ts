// The context store (issue 14): KV pages kept below GPU memory, keyed by chained page hashes.
// The Node directory backend is imported from './directory-backend.js' by Node code only.
export { ContextStore, type ContextStoreMetrics, type ContextStoreOptions, type ContextStoreUsage, type StoreWarning } from './context-store.js';
export { type RecordMeta, type StoreBackend } from './backend.js';
export { IndexedDbBackend, DEFAULT_DATABASE } from './indexeddb-backend.js';
export { decodeRecord, encodeRecord, RecordError, RECORD_VERSION, type PageRecord, type RecordIdentity, type RecordProblem, type StoredLayout } from './record.js';
export { crc32 } from './crc32.js';
