export { PagePool } from './page-pool.js';
export { KvCache, defaultKvMemoryBytes, kvBytesPerToken, type KvCacheOptions } from './kv-cache.js';
export { KvManager, type KvOwner } from './kv-manager.js';
