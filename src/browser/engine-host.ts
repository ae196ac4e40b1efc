// The worker side of the engine-in-a-worker: an Engine behind a small message-friendly surface
// (comlink calls it). Every value crossing the boundary is structured-cloneable: requests and
// responses are plain JSON, errors come back as OpenAI error bodies with their status, and
// streamed chunks are pushed to a callback the page passed in (a comlink proxy).
import { ApiError, Engine, locateXGrammarScript, type ApiErrorBody, type ContextKeepRequest, type ContextStoreStats, type EngineOptions, type InitProgressReport, type EngineMetricsSnapshot } from '../engine/index.js';
import type { SessionCreateRequest, SessionObject, TokenizeRequest, TokenizeResponse } from '../engine/protocol.js';
import type { ModelSource } from '../model/index.js';
import type { KeptContext, StoredRecord } from '../persist/index.js';
import { ModelCache, reloadCached, type CachedModel } from './model-cache.js';

export type Outcome<T> = { ok: true; value: T } | { ok: false; status: number; error: ApiErrorBody; retryAfter?: number };

/** Engine options that can cross to a worker (no runtime, signal or callbacks). */
export interface WorkerEngineOptions extends Omit<EngineOptions, 'runtime' | 'signal' | 'initProgressCallback' | 'model'> {
  /** Keep models loaded from a URL in Cache Storage (default true where the context has it). */
  cacheModels?: boolean;
  /**
   * The URL of XGrammar's script (the builds' xgrammar.js; absolute, or relative to the worker's
   * script), fetched once a rejected grammar needs a fresh XGrammar instance (default: xgrammar.js
   * beside the worker's script, where it has one).
   */
  xgrammarScript?: string;
}

export type CreateKind = 'chat' | 'text';

export class EngineHost {
  private readonly engine = new Engine();
  private readonly requests = new Map<number, AbortController>();
  private readonly cache = new ModelCache();

  async reload(model: ModelSource, options: WorkerEngineOptions, onProgress?: (r: InitProgressReport) => unknown): Promise<Outcome<string>> {
    // The page's callback answers each call; the last answer is awaited before the result goes
    // back, so every report reaches the page before the load's result does.
    let delivered: unknown = undefined;
    return outcome(async () => {
      if (onProgress) this.engine.setInitProgressCallback((r) => void (delivered = onProgress(r)));
      const { cacheModels, xgrammarScript, ...engineOptions } = options;
      if (xgrammarScript) locateXGrammarScript(xgrammarScript);
      const url = typeof model === 'string' || model instanceof URL ? new URL(String(model), self.location.href).href : null;
      if (!url || cacheModels === false || !ModelCache.available) {
        await this.engine.reload(model, engineOptions);
      } else {
        await reloadCached(this.engine, this.cache, url, engineOptions);
      }
      await delivered;
      return this.engine.modelId ?? '';
    });
  }

  cachedModels(): Promise<CachedModel[]> {
    return this.cache.list();
  }

  deleteCachedModel(url: string): Promise<boolean> {
    return this.cache.delete(url);
  }

  /**
   * Runs one request. Streaming: every chunk goes to `onChunk` (awaited, so a slow page slows the
   * stream instead of queueing it), and the value is null. Otherwise the value is the response.
   */
  async create(id: number, kind: CreateKind, request: unknown, onChunk?: (chunk: unknown) => Promise<void> | void): Promise<Outcome<unknown>> {
    const controller = new AbortController();
    this.requests.set(id, controller);
    try {
      return await outcome(async () => {
        const options = { signal: controller.signal };
        const body = request as never;
        const result = kind === 'chat' ? await this.engine.chat.completions.create(body, options) : await this.engine.completions.create(body, options);
        if (!isAsyncIterable(result)) return result;
        for await (const chunk of result) await onChunk?.(chunk);
        return null;
      });
    } finally {
      this.requests.delete(id);
    }
  }

  tokenize(request: TokenizeRequest): Promise<Outcome<TokenizeResponse>> {
    return outcome(() => this.engine.tokenize(request));
  }

  abort(id: number): void {
    this.requests.get(id)?.abort();
  }

  interruptGenerate(): void {
    this.engine.interruptGenerate();
  }

  async unload(): Promise<void> {
    await this.engine.unload();
  }

  async resetChat(keepStats?: boolean): Promise<void> {
    await this.engine.resetChat(keepStats);
  }

  getMessage(): Promise<string> {
    return this.engine.getMessage();
  }

  runtimeStatsText(): Promise<Outcome<string>> {
    return outcome(() => this.engine.runtimeStatsText());
  }

  metrics(): Outcome<EngineMetricsSnapshot> {
    try {
      return { ok: true, value: this.engine.metrics() };
    } catch (e) {
      return failure(e);
    }
  }

  /**
   * For tests only: destroys the engine's GPU device, which makes it lost as when the browser
   * takes it away, so recovery can be tested with requests in flight. False with no model loaded.
   */
  loseDeviceForTesting(): boolean {
    const device = this.engine.model?.rt.gpu.device;
    device?.destroy();
    return !!device;
  }

  sessionCreate(request: SessionCreateRequest): Promise<Outcome<SessionObject>> {
    return outcome(() => this.engine.sessions.create(request));
  }

  sessionClone(id: string): Promise<Outcome<SessionObject>> {
    return outcome(() => this.engine.sessions.clone(id));
  }

  sessionRetrieve(id: string): Promise<Outcome<SessionObject>> {
    return outcome(() => this.engine.sessions.retrieve(id));
  }

  sessionDestroy(id: string): Promise<Outcome<boolean>> {
    return outcome(() => this.engine.sessions.destroy(id));
  }

  endWorkflow(workflowId: string): Promise<Outcome<boolean>> {
    return outcome(() => this.engine.workflows.end(workflowId));
  }

  /** Engine.contexts in the worker (the context store). */
  contextsUsage(): Promise<Outcome<ContextStoreStats | null>> {
    return outcome(() => this.engine.contexts.usage());
  }

  contextsList(): Promise<Outcome<StoredRecord[]>> {
    return outcome(() => this.engine.contexts.list());
  }

  contextsKeep(request: ContextKeepRequest): Promise<Outcome<KeptContext>> {
    return outcome(() => this.engine.contexts.keep(request));
  }

  contextsRelease(id: string): Promise<Outcome<boolean>> {
    return outcome(() => this.engine.contexts.release(id));
  }

  contextsKept(): Promise<Outcome<KeptContext[]>> {
    return outcome(() => this.engine.contexts.kept());
  }

  contextsDelete(keys: string | string[]): Promise<Outcome<void>> {
    return outcome(() => this.engine.contexts.delete(keys));
  }

  contextsClear(): Promise<Outcome<void>> {
    return outcome(() => this.engine.contexts.clear());
  }

  modelId(): string | null {
    return this.engine.modelId;
  }
}

async function outcome<T>(body: () => Promise<T>): Promise<Outcome<T>> {
  try {
    return { ok: true, value: await body() };
  } catch (e) {
    return failure(e);
  }
}

function failure(e: unknown): { ok: false; status: number; error: ApiErrorBody; retryAfter?: number } {
  const error = ApiError.from(e);
  return { ok: false, status: error.status, error: error.toJSON(), retryAfter: error.retryAfter };
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === 'object' && value !== null && Symbol.asyncIterator in value;
}
