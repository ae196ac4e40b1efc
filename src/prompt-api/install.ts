// installPromptApi(): globalThis.LanguageModel backed by a wgserve engine, where the browser has
// no LanguageModel of its own. The engine is the app's (`engine`), or one started in a Web
// Worker on the first create(), loading the app's model (default: the shipped model).
import { createWorkerEngine } from '../browser/worker-engine.js';
import type { ModelSource } from '../model/index.js';
import { lazyEngine, loadedEngine, type EngineProvider, type PromptApiEngine } from './backend.js';
import { createLanguageModelClass, type LanguageModelClass, type PromptApiOptions } from './language-model.js';

export const SHIPPED_MODEL_URL = new URL('../../models/wg-tolstoy-q8_0.gguf', import.meta.url).href;

export interface InstallPromptApiOptions extends PromptApiOptions {
  /** An engine with its model loaded (Engine, or a WorkerEngine): sessions run on it. */
  engine?: PromptApiEngine;
  /** Else the model a new engine loads on the first create(): a URL, File, Blob or bytes (default: the shipped model). */
  model?: ModelSource;
  /** The worker for that engine (running wgserve's engine.worker), or a function that starts one. */
  worker?: Worker | (() => Worker);
  /** Define LanguageModel even where the browser has one (default false). */
  force?: boolean;
}

/** The LanguageModel class for these options, without installing it. */
export function createLanguageModel(options: InstallPromptApiOptions = {}): LanguageModelClass {
  const { engine, model, worker, force: _force, ...api } = options;
  return createLanguageModelClass(engine ? loadedEngine(engine) : workerProvider(model ?? SHIPPED_MODEL_URL, worker), api);
}

/**
 * Defines globalThis.LanguageModel unless the browser has one (or `force`), and returns the
 * LanguageModel now in place.
 */
export function installPromptApi(options: InstallPromptApiOptions = {}): LanguageModelClass {
  const global = globalThis as { LanguageModel?: LanguageModelClass };
  if (global.LanguageModel && !options.force) return global.LanguageModel;
  const LanguageModel = createLanguageModel(options);
  Object.defineProperty(globalThis, 'LanguageModel', { value: LanguageModel, writable: true, configurable: true, enumerable: false });
  return LanguageModel;
}

function workerProvider(model: ModelSource, worker: Worker | (() => Worker) | undefined): EngineProvider {
  const canRun = () => typeof Worker !== 'undefined' && typeof navigator !== 'undefined' && 'gpu' in navigator;
  return lazyEngine(async (onProgress) => {
    const w = typeof worker === 'function' ? worker() : worker ?? defaultWorker();
    const source = typeof model === 'string' && typeof document !== 'undefined' ? new URL(model, document.baseURI).href : model;
    return createWorkerEngine({ worker: w, model: source, initProgressCallback: (r) => onProgress(r.progress) });
  }, canRun);
}

function defaultWorker(): Worker {
  return new Worker(new URL('../../workers/engine.worker.ts', import.meta.url), { type: 'module' });
}
