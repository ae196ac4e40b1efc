// wgserve/prompt-api: the W3C Prompt API (LanguageModel) on a wgserve engine.
import { createLanguageModelWith, installPromptApiWith, type EngineDefaults, type InstallPromptApiOptions } from './install.js';
import type { LanguageModelClass } from './language-model.js';

export { createLanguageModelClass, LanguageModelSession, SAMPLING_LIMITS, type LanguageModelClass, type PromptApiOptions } from './language-model.js';
export { lazyEngine, loadedEngine, type EngineProvider, type PromptApiEngine } from './backend.js';
export { quotaExceeded, type QuotaExceededInfo } from './errors.js';
export type { InstallPromptApiOptions } from './install.js';
export type * from './types.js';

// Not a literal in new URL(): a bundler would copy (or inline) the model into the build.
const SHIPPED_MODEL_PATH = '../../models/wg-tolstoy-q8_0.gguf';

/** This module's defaults: the package's engine worker, and its shipped model (both two folders up from src/prompt-api and dist/esm). */
const defaults: EngineDefaults = {
  model: () => new URL(SHIPPED_MODEL_PATH, import.meta.url).href,
  worker: () => new Worker(new URL('../../workers/engine.worker.ts', import.meta.url), { type: 'module' }),
};

/** A LanguageModel class on an engine (options.engine), or on one in a Web Worker loading options.model; not installed. */
export function createLanguageModel(options: InstallPromptApiOptions = {}): LanguageModelClass {
  return createLanguageModelWith(options, defaults);
}

/**
 * Defines globalThis.LanguageModel where the browser has none, or has one whose model is
 * 'unavailable', or always with force; resolves to the LanguageModel in place.
 */
export function installPromptApi(options: InstallPromptApiOptions = {}): Promise<LanguageModelClass> {
  return installPromptApiWith(options, defaults);
}

/** LanguageModel on an engine in a Web Worker that loads the shipped model on the first create(). */
export const LanguageModel: LanguageModelClass = createLanguageModel();
