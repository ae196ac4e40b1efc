export { installPromptApi, createLanguageModel, SHIPPED_MODEL_URL, type InstallPromptApiOptions } from './install.js';
export { createLanguageModelClass, LanguageModelSession, SAMPLING_LIMITS, type LanguageModelClass, type PromptApiOptions } from './language-model.js';
export { lazyEngine, loadedEngine, type EngineProvider, type PromptApiEngine } from './backend.js';
export { quotaExceeded, type QuotaExceededInfo } from './errors.js';
export type * from './types.js';

import { createLanguageModel } from './install.js';

/** LanguageModel on an engine in a Web Worker that loads the shipped model on the first create(). */
export const LanguageModel = createLanguageModel();
