// The page side of the engine-in-a-worker: the same API as createEngine (chat.completions.create,
// completions.create, reload, interruptGenerate, ...), each call forwarded to the worker's
// EngineHost through comlink. Streamed chunks arrive as the worker produces them; aborting the
// signal or leaving the for-await loop stops the request in the worker.
import { proxy, releaseProxy, wrap, type Remote } from 'comlink';
import { AsyncQueue } from '../engine/async-queue.js';
import { ApiError } from '../engine/errors.js';
import type { ContextsApi, EngineMetricsSnapshot, InitProgressCallback, InitProgressReport } from '../engine/index.js';
import type { ChatCompletionRequestBase, ChatCompletionsApi, CompletionCreateParamsBase, CompletionsApi, ModelList, RequestOptions, SessionsApi, TokenizeRequest, TokenizeResponse } from '../engine/protocol.js';
import type { ModelSource } from '../model/index.js';
import type { CreateKind, EngineHost, Outcome, WorkerEngineOptions } from './engine-host.js';
import type { CachedModel } from './model-cache.js';

export interface CreateWorkerEngineOptions extends WorkerEngineOptions {
  /** The worker running workers/engine.worker.ts. */
  worker: Worker;
  /** Loaded before the engine resolves: a URL, or a File/Blob/ArrayBuffer (copied to the worker). */
  model?: ModelSource;
  initProgressCallback?: InitProgressCallback;
}

export class WorkerEngine {
  readonly chat: { completions: ChatCompletionsApi };
  readonly completions: CompletionsApi;
  readonly models = { list: async (): Promise<ModelList> => this.listModels() };
  /** Engine.workflows in the worker: end(id) releases the KV kept for the workflow and records its completion time. */
  readonly workflows = { end: async (workflowId: string): Promise<boolean> => unwrap(await this.host.endWorkflow(workflowId)) };
  /** Engine.sessions in the worker: KV contexts kept between requests (session_id). */
  readonly sessions: SessionsApi = {
    create: async (request = {}) => unwrap(await this.host.sessionCreate(request)),
    clone: async (id) => unwrap(await this.host.sessionClone(id)),
    retrieve: async (id) => unwrap(await this.host.sessionRetrieve(id)),
    destroy: async (id) => unwrap(await this.host.sessionDestroy(id)),
  };
  /** Engine.contexts in the worker: the context store (usage, list, keep, release, kept, delete, clear). */
  readonly contexts: ContextsApi = {
    usage: async () => unwrap(await this.host.contextsUsage()),
    list: async () => unwrap(await this.host.contextsList()),
    keep: async (request) => unwrap(await this.host.contextsKeep(request)),
    release: async (id) => unwrap(await this.host.contextsRelease(id)),
    kept: async () => unwrap(await this.host.contextsKept()),
    delete: async (keys) => unwrap(await this.host.contextsDelete(typeof keys === 'string' ? keys : [...keys])),
    clear: async () => unwrap(await this.host.contextsClear()),
  };
  private readonly host: Remote<EngineHost>;
  private progressCallback: InitProgressCallback | undefined;
  private nextId = 1;
  private loadedId: string | null = null;

  constructor(readonly worker: Worker, private readonly options: WorkerEngineOptions = {}) {
    this.host = wrap<EngineHost>(worker);
    const chatCreate = (r: ChatCompletionRequestBase, o?: RequestOptions) => this.create('chat', r, o);
    const textCreate = (r: CompletionCreateParamsBase, o?: RequestOptions) => this.create('text', r, o);
    this.chat = { completions: { create: chatCreate as ChatCompletionsApi['create'] } };
    this.completions = { create: textCreate as CompletionsApi['create'] };
  }

  get modelId(): string | null {
    return this.loadedId;
  }

  async reload(model: ModelSource, options: WorkerEngineOptions = {}): Promise<void> {
    // Reports travel on their own message channel and can land after the result: once reload
    // has settled, late ones are dropped, so a caller never sees progress after "ready".
    let settled = false;
    const callback = this.progressCallback;
    const onProgress = callback ? proxy((r: InitProgressReport) => void (!settled && callback(r))) : undefined;
    this.loadedId = null;
    try {
      this.loadedId = unwrap(await this.host.reload(model, { ...this.options, ...options }, onProgress));
    } finally {
      settled = true;
    }
  }

  async unload(): Promise<void> {
    this.loadedId = null;
    await this.host.unload();
  }

  /** unload() and stop the worker. */
  async terminate(): Promise<void> {
    await this.unload();
    this.host[releaseProxy]();
    this.worker.terminate();
  }

  /** Models kept in the browser's Cache Storage (loaded from URLs before). */
  cachedModels(): Promise<CachedModel[]> {
    return this.host.cachedModels();
  }

  deleteCachedModel(url: string): Promise<boolean> {
    return this.host.deleteCachedModel(url);
  }

  /** The token ids a chat or text would be to the model, and the context length (Engine.tokenize). */
  async tokenize(request: TokenizeRequest): Promise<TokenizeResponse> {
    return unwrap(await this.host.tokenize(request));
  }

  interruptGenerate(): void {
    void this.host.interruptGenerate();
  }

  async resetChat(keepStats = false): Promise<void> {
    await this.host.resetChat(keepStats);
  }

  getMessage(): Promise<string> {
    return this.host.getMessage();
  }

  async runtimeStatsText(): Promise<string> {
    return unwrap(await this.host.runtimeStatsText());
  }

  async metrics(): Promise<EngineMetricsSnapshot> {
    return unwrap(await this.host.metrics());
  }

  setInitProgressCallback(callback: InitProgressCallback): void {
    this.progressCallback = callback;
  }

  getInitProgressCallback(): InitProgressCallback | undefined {
    return this.progressCallback;
  }

  private async create(kind: CreateKind, request: ChatCompletionRequestBase | CompletionCreateParamsBase, options: RequestOptions = {}): Promise<unknown> {
    options.signal?.throwIfAborted();
    const id = this.nextId++;
    const abort = () => void this.host.abort(id);
    options.signal?.addEventListener('abort', abort, { once: true });
    const done = () => options.signal?.removeEventListener('abort', abort);
    if (!request.stream) {
      try {
        return unwrap(await this.host.create(id, kind, request));
      } finally {
        done();
      }
    }
    return this.stream(id, kind, request, abort, done);
  }

  /** Starts a streaming request; resolves once the first chunk (or an error) arrives, like Engine. */
  private async stream(id: number, kind: CreateKind, request: unknown, abort: () => void, done: () => void): Promise<AsyncIterable<unknown>> {
    const chunks = new AsyncQueue<unknown>(abort);
    let failure: ApiError | null = null;
    let first!: () => void;
    const started = new Promise<void>((resolve) => (first = resolve));
    const onChunk = proxy((chunk: unknown) => {
      chunks.push(chunk);
      first();
    });
    void this.host.create(id, kind, request, onChunk).then(
      (result) => (result.ok ? chunks.close() : chunks.fail((failure = toApiError(result)))),
      (e: unknown) => chunks.fail((failure = ApiError.from(e))),
    ).finally(() => {
      done();
      first();
    });
    await started;
    if (failure) throw failure;
    return chunks;
  }

  private async listModels(): Promise<ModelList> {
    const id = await this.host.modelId();
    return { object: 'list', data: id ? [{ id, object: 'model', created: 0, owned_by: 'wgserve' }] : [] };
  }
}

/** Starts an engine in `options.worker` and loads `options.model` (when given) before resolving. */
export async function createWorkerEngine(options: CreateWorkerEngineOptions): Promise<WorkerEngine> {
  const { worker, model, initProgressCallback, ...engineOptions } = options;
  const engine = new WorkerEngine(worker, engineOptions);
  if (initProgressCallback) engine.setInitProgressCallback(initProgressCallback);
  if (model !== undefined) await engine.reload(model);
  return engine;
}

function unwrap<T>(result: Outcome<T>): T {
  if (result.ok) return result.value;
  throw toApiError(result);
}

function toApiError(result: { status: number; error: { error: { message: string; type: ApiError['type']; param: string | null; code: string | null } }; retryAfter?: number }): ApiError {
  const e = result.error.error;
  return new ApiError(e.message, result.status, e.type, e.param, e.code, result.retryAfter);
}
