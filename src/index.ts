// wgserve's public API.
export { GpuRuntime, GpuDeviceLostError, GpuOutOfMemoryError, GpuUnavailableError, type GpuDevice } from './gpu/index.js';
export {
  Model,
  ForwardPass,
  Tokenizer,
  StreamingDecoder,
  renderChat,
  GgufError,
  ModelSourceError,
  type ModelConfig,
  type ModelSource,
  type LoadProgress,
  type Batch,
} from './model/index.js';
export { KvCache, PagePool, type KvCacheOptions } from './kv/index.js';
export {
  Engine,
  MLCEngine,
  createEngine,
  CreateMLCEngine,
  ApiError,
  createOpenAiHandler,
  locateXGrammarScript,
  provideXGrammar,
  type OpenAiHandler,
  type OpenAiHandlerOptions,
  generate,
  type EngineOptions,
  type InitProgressReport,
  type InitProgressCallback,
  type MLCEngineInterface,
  type ChatOptions,
  type MetricsSnapshot,
  type EngineMetricsSnapshot,
  type WorkflowFigures,
  type AgentFigures,
  type GenerateRequest,
  type GenerateResult,
  type GenerateOptions,
  type ContextStoreConfig,
  type ContextStoreStats,
} from './engine/index.js';
export type * from './engine/protocol.js';
