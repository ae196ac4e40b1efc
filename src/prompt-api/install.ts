// installPromptApi(): globalThis.LanguageModel backed by a wgserve engine, where the browser has
// no LanguageModel of its own. The engine is the app's (`engine`), or one started in a Web
// Worker on the first create(), loading the app's model (default: the shipped model). Where the
// default model and worker come from depends on the build (ES module or drop-in script), so the
// entry passes them in.
import type { WorkerEngineOptions } from '../browser/engine-host.js';
import { createWorkerEngine } from '../browser/worker-engine.js';
import type { ModelSource } from '../model/index.js';
import { lazyEngine, loadedEngine, type EngineProvider, type PromptApiEngine } from './backend.js';
import { createLanguageModelClass, type LanguageModelClass, type PromptApiOptions } from './language-model.js';

export interface InstallPromptApiOptions extends PromptApiOptions {
  /** An engine with its model loaded (Engine, or a WorkerEngine): sessions run on it. */
  engine?: PromptApiEngine;
  /** Or: how to get the engine on the first create() (its load's progress 0 .. 1 to `onProgress`). */
  loadEngine?: (onProgress: (fraction: number) => void) => Promise<PromptApiEngine>;
  /** Else the model a new engine in a worker loads on the first create(): a URL, File, Blob or bytes (default: the shipped model). */
  model?: ModelSource;
  /** The worker for that engine (running wgserve's engine.worker), or a function that starts one (default: the package's). */
  worker?: Worker | (() => Worker);
  /** Define LanguageModel even where the browser has one (default false). */
  force?: boolean;
}

/** Where a build finds the shipped model and the engine's worker. */
export interface EngineDefaults {
  model: () => ModelSource;
  worker: () => Worker;
  /** Options for the worker's engine (the drop-in's: where XGrammar's script is). */
  engineOptions?: WorkerEngineOptions;
}

/** The LanguageModel class for these options, without installing it. */
export function createLanguageModelWith(options: InstallPromptApiOptions, defaults: EngineDefaults): LanguageModelClass {
  const { engine, model, worker, loadEngine, force: _force, ...api } = options;
  const provider = engine ? loadedEngine(engine) : lazyEngine(loadEngine ?? workerLoader(model, worker, defaults), canRun);
  return createLanguageModelClass(provider, api);
}

/**
 * Defines globalThis.LanguageModel where there is none, or where the browser's own says its model
 * is 'unavailable' (Chromium builds without Gemini Nano have one), or always with `force`.
 * Resolves to the LanguageModel in place once that is decided; with no LanguageModel before, or
 * with force, ours is in place when this returns.
 */
export async function installPromptApiWith(options: InstallPromptApiOptions, defaults: EngineDefaults): Promise<LanguageModelClass> {
  const global = globalThis as { LanguageModel?: LanguageModelClass };
  const native = global.LanguageModel;
  const ours = createLanguageModelWith(options, defaults);
  const install = () => {
    Object.defineProperty(globalThis, 'LanguageModel', { value: ours, writable: true, configurable: true, enumerable: false });
    return ours;
  };
  if (!native || options.force) return install();
  const nativeAvailability = await Promise.resolve(native.availability()).catch(() => 'unavailable');
  // Page code may have set its own meanwhile: leave that.
  if (nativeAvailability !== 'unavailable' || global.LanguageModel !== native) return global.LanguageModel ?? native;
  return install();
}

/** A page that can run an engine in a worker: it has workers and WebGPU. */
function canRun(): boolean {
  return typeof Worker !== 'undefined' && typeof navigator !== 'undefined' && 'gpu' in navigator;
}

function workerLoader(model: ModelSource | undefined, worker: Worker | (() => Worker) | undefined, defaults: EngineDefaults): (onProgress: (f: number) => void) => Promise<PromptApiEngine> {
  return async (onProgress) => {
    const w = typeof worker === 'function' ? worker() : worker ?? defaults.worker();
    const m = model ?? defaults.model();
    const source = typeof m === 'string' && typeof document !== 'undefined' ? new URL(m, document.baseURI).href : m;
    return createWorkerEngine({ ...defaults.engineOptions, worker: w, model: source, initProgressCallback: (r) => onProgress(r.progress) });
  };
}

export type { EngineProvider };
