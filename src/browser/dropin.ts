// The drop-in script (dist/wgserve.js): one <script> tag gives a page window.wgserve. The engine
// runs in a Web Worker bundled into the same file, so the page needs nothing else:
//
//   <script src="wgserve.js" data-model="models/my-model.gguf"></script>
//   <script>
//     wgserve.ready.then(async (engine) => {
//       const r = await engine.chat.completions.create({ messages: [{ role: 'user', content: 'Hi' }] });
//     });
//   </script>
//
// window.wgserve.createEngine(options) starts another engine; with data-model, wgserve.ready
// resolves to an engine with that model loaded (and rejects with the load error).
//
// With data-prompt-api, the page also gets the W3C Prompt API (window.LanguageModel) where the
// browser has none: on the engine of data-model when there is one, else on an engine that loads
// the model data-prompt-api names (default: the shipped model beside the script) on first create().
// A browser LanguageModel whose model is 'unavailable' is replaced; wgserve.promptApi resolves
// to the LanguageModel in place.
// The module exports no values: the IIFE build would assign them over window.wgserve.
import EngineWorker from '../../workers/engine.worker.ts?worker&inline';
import { ApiError } from '../engine/errors.js';
import type { InitProgressCallback } from '../engine/index.js';
import type { ModelSource } from '../model/index.js';
import { installPromptApiWith, type EngineDefaults } from '../prompt-api/install.js';
import type { LanguageModelClass } from '../prompt-api/language-model.js';
import type { WorkerEngineOptions } from './engine-host.js';
import { createWorkerEngine, type WorkerEngine } from './worker-engine.js';

export interface DropInEngineOptions extends WorkerEngineOptions {
  /** A URL (relative to the page), File, Blob or ArrayBuffer. */
  model?: ModelSource;
  initProgressCallback?: InitProgressCallback;
}

/**
 * XGrammar's script, beside this one (dist/xgrammar.js): the worker fetches it only when a rejected
 * grammar needs a fresh XGrammar instance. Read while this script runs (currentScript).
 */
const XGRAMMAR_SCRIPT = scriptSibling('xgrammar.js');

function scriptSibling(name: string): string | undefined {
  const src = (document.currentScript as HTMLScriptElement | null)?.src;
  return src ? new URL(name, src).href : undefined;
}

/** Starts an engine in a new worker; relative model (and xgrammarScript) URLs resolve against the page. */
function createEngine(options: DropInEngineOptions = {}): Promise<WorkerEngine> {
  const model = typeof options.model === 'string' ? new URL(options.model, document.baseURI).href : options.model;
  const xgrammarScript = options.xgrammarScript ? new URL(options.xgrammarScript, document.baseURI).href : XGRAMMAR_SCRIPT;
  return createWorkerEngine({ ...options, model, xgrammarScript, worker: new EngineWorker() });
}

export interface WgserveGlobal {
  createEngine: typeof createEngine;
  ApiError: typeof ApiError;
  /** With data-model: the engine once its model is loaded. Without: rejects. */
  ready: Promise<WorkerEngine>;
  /** The ready engine, once there is one. */
  engine: WorkerEngine | null;
  /** With data-prompt-api: the LanguageModel in place once the drop-in has decided (see installPromptApi). */
  promptApi: Promise<LanguageModelClass> | null;
}

declare global {
  interface Window {
    wgserve: WgserveGlobal;
  }
}

function install(): void {
  const script = document.currentScript as HTMLScriptElement | null;
  const model = script?.dataset.model;
  const global: WgserveGlobal = {
    createEngine,
    ApiError,
    engine: null,
    promptApi: null,
    ready: model
      ? createEngine({
        model,
        initProgressCallback: (r) => script?.dispatchEvent(new CustomEvent('wgserve-progress', { detail: r })),
      }).then((engine) => (global.engine = engine))
      : Promise.reject(new Error('wgserve: no data-model on the script tag; call wgserve.createEngine({ model })')),
  };
  global.ready.catch(() => {}); // only an awaited failure is an error
  window.wgserve = global;
  const promptApi = script?.dataset.promptApi;
  if (promptApi !== undefined && script) global.promptApi = installDropInPromptApi(script, promptApi, model ? global.ready : null);
}

/** LanguageModel on the drop-in's engine (`ready`), or on one of its own loading `promptApi` (a model URL; '' is the shipped model). */
function installDropInPromptApi(script: HTMLScriptElement, promptApi: string, ready: Promise<WorkerEngine> | null): Promise<LanguageModelClass> {
  const defaults: EngineDefaults = {
    model: () => (promptApi ? new URL(promptApi, document.baseURI).href : new URL('../models/wg-tolstoy-q8_0.gguf', script.src).href),
    worker: () => new EngineWorker(),
    engineOptions: { xgrammarScript: XGRAMMAR_SCRIPT },
  };
  const loadEngine = ready && ((onProgress: (fraction: number) => void) => {
    const forward = (e: Event) => onProgress((e as CustomEvent<{ progress: number }>).detail.progress);
    script.addEventListener('wgserve-progress', forward);
    return ready.finally(() => script.removeEventListener('wgserve-progress', forward));
  });
  return installPromptApiWith(loadEngine ? { loadEngine } : {}, defaults);
}

install();
