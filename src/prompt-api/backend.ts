// What a LanguageModel runs on: any engine with wgserve's chat API and tokenize() (Engine in
// Node or a page, WorkerEngine in a Web Worker), behind a provider that loads it on first use and
// reports the load's progress (create()'s downloadprogress events).
import type { ChatCompletionsApi, SessionsApi, TokenizeRequest, TokenizeResponse } from '../engine/protocol.js';
import type { Availability } from './types.js';

export interface PromptApiEngine {
  readonly chat: { completions: ChatCompletionsApi };
  tokenize(request: TokenizeRequest): Promise<TokenizeResponse>;
  /**
   * Engine sessions (Engine and WorkerEngine have them): each LanguageModel session is one, so its
   * KV stays pinned between calls. Without them, reuse is left to the prefix cache.
   */
  readonly sessions?: SessionsApi;
}

export interface EngineProvider {
  /** Whether a session could be had now, after a load already under way, or after a new load. */
  availability(): Availability;
  /** The engine, loading it first if need be; `onProgress` gets the load's fraction done (0 .. 1). */
  engine(onProgress?: (fraction: number) => void): Promise<PromptApiEngine>;
}

/** An engine that is already loaded. */
export function loadedEngine(engine: PromptApiEngine): EngineProvider {
  return { availability: () => 'available', engine: async () => engine };
}

/**
 * An engine loaded by `load` on first use, once: sessions created while it loads wait for the
 * same load. A failed load is tried again by the next create().
 */
export function lazyEngine(load: (onProgress: (fraction: number) => void) => Promise<PromptApiEngine>, canRun: () => boolean = () => true): EngineProvider {
  let loading: Promise<PromptApiEngine> | null = null;
  let loaded = false;
  const listeners = new Set<(fraction: number) => void>();
  return {
    availability: () => (!canRun() ? 'unavailable' : loaded ? 'available' : loading ? 'downloading' : 'downloadable'),
    engine: (onProgress) => {
      if (onProgress) listeners.add(onProgress);
      loading ??= load((f) => listeners.forEach((l) => l(f))).then(
        (engine) => {
          loaded = true;
          return engine;
        },
        (e: unknown) => {
          loading = null;
          throw e;
        },
      );
      return loading.finally(() => onProgress && listeners.delete(onProgress));
    },
  };
}
