export { Engine, MLCEngine, createEngine, CreateMLCEngine, type EngineOptions, type InitProgressReport, type InitProgressCallback, type MLCEngineInterface, type ChatOptions, type EngineMetricsSnapshot } from './engine.js';
export { EngineCore, type EngineCoreOptions, type SamplingParams, type SeqEvent, type SeqHandle, type SeqTimings } from './engine-core.js';
export { ApiError, type ApiErrorBody, type ApiErrorType } from './errors.js';
export { type MetricsSnapshot, type StepRecord } from './metrics.js';
export { generate, type GenerateRequest, type GenerateResult, type GenerateOptions } from './generate.js';
export type * from './protocol.js';
export { createOpenAiHandler, type OpenAiHandler, type OpenAiHandlerOptions } from './http.js';
export { provideXGrammar } from './grammar/index.js';
