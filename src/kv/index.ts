export { PagePool, type PageState } from './page-pool.js';
export { KvCache, defaultKvMemoryBytes, kvBytesPerToken, type KvCacheOptions } from './kv-cache.js';
export { KvManager, type KvOwner, type PrefixCacheStats } from './kv-manager.js';
export { KvContext } from './kv-context.js';
export { HashPrefixCache, NoPrefixCache, type PrefixCache, type PrefixMatch } from './prefix-cache.js';
export { PageHasher, fnv1a64, type PageHash } from './page-hash.js';
export { KvRetention, type RetentionRank } from './retention.js';
