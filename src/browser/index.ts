export { createWorkerEngine, WorkerEngine, type CreateWorkerEngineOptions } from './worker-engine.js';
export { EngineHost, type WorkerEngineOptions } from './engine-host.js';
export { ModelCache, MODEL_CACHE_NAME, type CachedModel, type OpenedModel } from './model-cache.js';
