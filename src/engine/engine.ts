// The public engine: OpenAI's chat.completions.create and completions.create over the step loop,
// plus the lifecycle members of @mlc-ai/web-llm's MLCEngineInterface (reload, unload,
// interruptGenerate, ...), so a web-llm app switches by changing its import.
import { GpuRuntime } from '../gpu/index.js';
import { isRereadable, Model, type LoadProgress, type ModelSource } from '../model/index.js';
import type { KeptContext, StoredRecord } from '../persist/index.js';
import type { ContextStoreStats } from './context-tier.js';
import type { ChatCompletionMessageParam, ChatCompletionTool } from './protocol.js';
import { EngineCore, type EngineCoreOptions, type ModelReopener, type SeqHandle } from './engine-core.js';
import { ApiError } from './errors.js';
import { GrammarError, Grammars, type Constraint } from './grammar/index.js';
import type { MetricsSnapshot } from './metrics.js';
import type {
  ChatCompletion, ChatCompletionChunk, ChatCompletionRequestBase, ChatCompletionsApi, Completion, CompletionCreateParamsBase,
  CompletionsApi, CompletionUsage, ModelList, RequestOptions, SessionCreateRequest, SessionObject, SessionsApi, TokenizeRequest, TokenizeResponse,
} from './protocol.js';
import { parseChatRequest, parseCompletionRequest, tokenizeRequest, type ParsedRequest } from './request.js';
import { chatChunks, chatCompletion, collectChoices, completionChunks, textCompletion, type ChoiceRun, type CollectedChoice, type ResponseMeta } from './responses.js';

export interface InitProgressReport {
  /** 0 .. 1 */
  progress: number;
  /** Seconds since loading began. */
  timeElapsed: number;
  text: string;
}

export type InitProgressCallback = (report: InitProgressReport) => void;

export interface EngineOptions extends EngineCoreOptions {
  /** web-llm's engine config field; accepted and unused (wgserve loads GGUF files, not an app config). */
  appConfig?: unknown;
  /** A GGUF file: path (Node), URL, Blob/File, or bytes. */
  model?: ModelSource;
  /** The name requests use in `model` (default: the file name without .gguf). */
  modelId?: string;
  initProgressCallback?: InitProgressCallback;
  /** Share a GPU runtime (default: the engine opens and owns one). */
  runtime?: GpuRuntime;
  /** Cancels loading. */
  signal?: AbortSignal;
  /** A model download that sends no byte for this long fails (default 30 000 ms). */
  downloadIdleTimeoutMs?: number;
  /** Most prompts in one /v1/completions request (default 64; more is a 400). */
  maxPromptsPerRequest?: number;
  /** Most choices (prompts × n) in one request (default 64; more is a 400). */
  maxChoicesPerRequest?: number;
  /** Most sequences queued or running in the engine (default 256); a request that would pass it gets a 429. */
  maxQueuedSequences?: number;
  /**
   * Where the model is read again when the GPU device is lost and the engine recovers on a new
   * one (default: the source itself when it can be re-read: a path, Blob/File or bytes; else the
   * copy keptModelBytes keeps). The browser's worker passes its Cache Storage copy here.
   */
  reopenModel?: () => Promise<ModelSource>;
  /**
   * For a source read once (a URL or a Response) with no reopenModel: keep a copy of the file in
   * memory so a lost device can be recovered from without a new download (default true). false:
   * the memory is saved, and a device loss ends serving with an error that says why.
   */
  keepModelBytes?: boolean;
}

const DEFAULT_MAX_QUEUED_SEQUENCES = 256;

export interface EngineMetricsSnapshot extends MetricsSnapshot {
  /** Sequences waiting or running now. */
  activeSequences: number;
  pagesUsed: number;
  pagesFree: number;
  /** Unreferenced pages the prefix cache keeps (evicted when pages are needed). */
  pagesCached: number;
  /** Of the cached pages, those pinned for workflows' next calls. */
  pagesRetained: number;
  totalPages: number;
  /** Lost GPU devices the engine replaced, recomputing its sequences. */
  deviceRecoveries: number;
  /** The scheduling policy. */
  policy: 'fcfs' | 'workflow';
  /** The context store's records and traffic, or null without one. */
  contextStore?: ContextStoreStats | null;
  /** Engine sessions open now, the distinct KV pages they pin, how often one was unpinned (for room or idle), and how many expired idle. */
  sessions: { open: number; pinnedPages: number; unpinned: number; expired: number };
}

/**
 * The fields of web-llm's ChatOptions that wgserve honours (reload's second argument): defaults
 * for requests that leave these out, and the context window.
 */
export interface ChatOptions {
  temperature?: number;
  top_p?: number;
  frequency_penalty?: number;
  presence_penalty?: number;
  repetition_penalty?: number;
  context_window_size?: number;
}

/** engine.contexts: the context store of the loaded model (see Engine.contexts). */
export interface ContextsApi {
  usage(): Promise<ContextStoreStats | null>;
  list(): Promise<StoredRecord[]>;
  keep(request: ContextKeepRequest): Promise<KeptContext>;
  release(id: string): Promise<boolean>;
  kept(): Promise<KeptContext[]>;
  delete(keys: string | readonly string[]): Promise<void>;
  clear(): Promise<void>;
}

/** A context to keep in the store (engine.contexts.keep): messages (rendered as the next turn will) or a prompt. */
export type ContextKeepRequest =
  | { model?: string | null; cache_salt?: string | null; messages: ChatCompletionMessageParam[]; tools?: ChatCompletionTool[]; prompt?: undefined }
  | { model?: string | null; cache_salt?: string | null; prompt: string | number[]; messages?: undefined };

interface Loaded {
  core: EngineCore;
  modelId: string;
  defaults: Readonly<Record<string, number>>;
  /** XGrammar over the model's tokenizer, made on the first constrained request. */
  grammars: Promise<Grammars> | null;
}

export class Engine {
  readonly chat: { completions: ChatCompletionsApi };
  readonly completions: CompletionsApi;
  readonly models = { list: async (): Promise<ModelList> => this.listModels() };
  /**
   * Workflows (requests with metadata.workflow_id). end(id): the workflow is over: KV kept for its
   * agents goes back to plain LRU and its completion time is recorded; false if none of that id is open.
   */
  readonly workflows = { end: async (workflowId: string): Promise<boolean> => this.requireLoaded().core.endWorkflow(workflowId) };
  /**
   * Sessions: KV contexts kept (pinned) between requests. create() computes its messages or prompt
   * once; a request with session_id computes only what its tokens add to the session's and leaves
   * its context (reply included) in the session; clone() shares every page (nothing computed);
   * destroy() releases them. Sessions go with the model (reload, unload).
   */
  readonly sessions: SessionsApi = {
    create: (request, options) => this.createSession(request, options),
    clone: async (id) => {
      const { core } = this.requireLoaded();
      const clone = sessionObject(core, core.cloneSession(id));
      const tokens = clone.tokens;
      return { ...clone, usage: { prompt_tokens: tokens, prompt_tokens_details: { cached_tokens: tokens } } };
    },
    retrieve: async (id) => sessionObject(this.requireLoaded().core, id),
    destroy: async (id) => this.loaded?.core.destroySession(id) ?? false,
  };

  /**
   * The context store (the contextStore option) of the loaded model. usage(): its records, bytes
   * and traffic (null without a store); list(): records, least recently used first; delete(keys):
   * removes records by key (a page hash, as list() names them); clear(): removes every record.
   * Records carry no cache_salt (it is hashed into the keys), so they cannot be listed by salt.
   * keep(request): the full pages of a context (messages or a prompt, under cache_salt) are
   * written to the store (computed first if neither the store nor GPU memory has them) and kept:
   * the byte budget evicts every other record first, across restarts, until release(id) or a
   * delete of one of its records. kept(): the contexts kept.
   */
  readonly contexts: ContextsApi = {
    usage: async (): Promise<ContextStoreStats | null> => this.loaded?.core.tier?.stats() ?? null,
    list: async (): Promise<StoredRecord[]> => this.requireTier().list(),
    keep: async (request: ContextKeepRequest): Promise<KeptContext> => this.keepContext(request),
    release: async (id: string): Promise<boolean> => this.requireTier().store.release(id),
    kept: async (): Promise<KeptContext[]> => this.requireTier().store.kept(),
    delete: async (keys: string | readonly string[]): Promise<void> => this.requireTier().store.delete(typeof keys === 'string' ? [keys] : [...keys]),
    clear: async (): Promise<void> => this.requireTier().store.clear(),
  };

  private loaded: Loaded | null = null;
  private runtime: GpuRuntime | null;
  private readonly ownsRuntime: boolean;
  private progressCallback: InitProgressCallback | undefined;
  private lastMessage = '';

  constructor(private readonly options: EngineOptions = {}) {
    this.runtime = options.runtime ?? null;
    this.ownsRuntime = !options.runtime;
    this.progressCallback = options.initProgressCallback;
    const chatCreate = (request: ChatCompletionRequestBase, o?: RequestOptions) => this.createChat(request, o);
    const textCreate = (request: CompletionCreateParamsBase, o?: RequestOptions) => this.createText(request, o);
    this.chat = { completions: { create: chatCreate as ChatCompletionsApi['create'] } };
    this.completions = { create: textCreate as CompletionsApi['create'] };
  }

  /** The loaded model's id, or null. */
  get modelId(): string | null {
    return this.loaded?.modelId ?? null;
  }

  /** The loaded model (for tools and tests that need its tokenizer or config). */
  get model(): Model | null {
    return this.loaded?.core.model ?? null;
  }

  /** The step loop, for metrics and tests; null when no model is loaded. */
  get core(): EngineCore | null {
    return this.loaded?.core ?? null;
  }

  /**
   * Loads a model (unloading the current one). web-llm passes a model id here; wgserve takes the
   * GGUF itself: a path, URL, Blob/File or bytes. One model at a time.
   */
  async reload(model: ModelSource | ModelSource[], options: (EngineOptions & ChatOptions) | ChatOptions[] = {}): Promise<void> {
    const source = Array.isArray(model) ? singleModel(model) : model;
    await this.unloadModel();
    const chatOptions: EngineOptions & ChatOptions = Array.isArray(options) ? options[0] ?? {} : options;
    const merged = { ...this.options, ...chatOptions };
    if (chatOptions.context_window_size !== undefined) merged.contextLength = chatOptions.context_window_size;
    if (this.runtime?.gpu.lostError && this.ownsRuntime) {
      // A lost device cannot be used again: reloading after a loss opens a new one.
      this.runtime.destroy();
      this.runtime = null;
    }
    const rt = this.runtime ?? (this.runtime = await GpuRuntime.create({ log: (line) => console.warn(line) }));
    const started = performance.now();
    const report = (p: LoadProgress) => this.progressCallback?.(progressReport(p, started, describe(source)));
    const keepBytes = !merged.reopenModel && !isRereadable(source) && merged.keepModelBytes !== false;
    const loadedModel = await Model.load(rt, source, { onProgress: report, signal: merged.signal, idleTimeoutMs: merged.downloadIdleTimeoutMs, keepBytes });
    try {
      const core = await EngineCore.create(loadedModel, merged, this.reopener(source, loadedModel, merged));
      this.loaded = { core, modelId: merged.modelId ?? modelIdOf(loadedModel), defaults: requestDefaults(chatOptions), grammars: null };
    } catch (e) {
      loadedModel.destroy();
      throw e;
    }
  }

  /** The token ids a chat or text would be to the model (vLLM's /tokenize), and the context length. */
  async tokenize(request: TokenizeRequest): Promise<TokenizeResponse> {
    const loaded = this.requireLoaded();
    const tokens = await tokenizeRequest(request, this.context(loaded));
    return { count: tokens.length, max_model_len: loaded.core.contextLength, tokens };
  }

  /**
   * How the step loop gets the model again on a new device after a device loss: the model's bytes
   * come from `reopenModel`, the source itself, or the copy kept while loading; the new device
   * replaces the lost one (only a device the engine opened itself can be replaced).
   */
  private reopener(source: ModelSource, model: Model, options: EngineOptions): ModelReopener {
    const again = options.reopenModel ?? (isRereadable(source) ? async () => source : model.keptBytes ? async () => model.keptBytes! : null);
    return async (lost) => {
      console.warn(`wgserve: ${lost.message}; recovering: a new device, the weights uploaded again, unfinished requests recomputed`);
      if (!again) throw new Error(`${model.source} was read once (a URL or a Response) and not kept (keepModelBytes: false); load it again with reload()`);
      if (!this.ownsRuntime) throw new Error('the engine was given its GPU runtime (the runtime option) and cannot replace it; reload the model on a new runtime');
      const bytes = await again();
      this.runtime?.destroy();
      this.runtime = null;
      const rt = (this.runtime = await GpuRuntime.create({ log: (line) => console.warn(line) }));
      return Model.load(rt, bytes, { idleTimeoutMs: options.downloadIdleTimeoutMs });
    };
  }

  /** Stops every request and frees the model, the KV cache and the GPU device if the engine opened it. */
  async unload(): Promise<void> {
    await this.unloadModel();
    if (this.ownsRuntime) {
      this.runtime?.destroy();
      this.runtime = null;
    }
  }

  /** The same as unload(). */
  async destroy(): Promise<void> {
    await this.unload();
  }

  /** Stops every running request; their streams end with finish_reason 'abort'. */
  interruptGenerate(): void {
    this.loaded?.core.abortAll();
  }

  /** Requests are stateless here (no chat history is kept between calls); clears the stats unless keepStats. */
  async resetChat(keepStats = false): Promise<void> {
    this.lastMessage = '';
    if (!keepStats) this.loaded?.core.metrics.reset();
  }

  /** The text of the last chat completion's first choice. */
  async getMessage(): Promise<string> {
    return this.lastMessage;
  }

  async runtimeStatsText(): Promise<string> {
    const { core } = this.requireLoaded();
    const s = core.tier?.stats();
    const store = s
      ? `; context store: ${s.records} records (${(s.bytes / 2 ** 20).toFixed(1)} MiB of ${(s.maxBytes / 2 ** 20).toFixed(0)}), ${s.pagesWritten} pages written, ${s.pagesRead} read, ` +
        `${s.pagesRestored} restored for ${s.restores} requests, ${s.recordsDropped} dropped as bad${s.writing ? '' : ', writes stopped (storage full)'}`
      : '';
    return core.metrics.text() + store;
  }

  /** Numbers behind runtimeStatsText, the latest step, and the engine right now, for charts. */
  metrics(): EngineMetricsSnapshot {
    const { core } = this.requireLoaded();
    const pool = core.kv.pool;
    const sessions = core.scheduler.sessions;
    return {
      ...core.metrics.snapshot(), activeSequences: core.activeCount, pagesUsed: pool.usedPages, pagesFree: pool.freePages, pagesCached: pool.cachedPages,
      pagesRetained: pool.retainedPages, totalPages: pool.totalPages, deviceRecoveries: core.recoveries, policy: core.workflowPolicy ? 'workflow' : 'fcfs',
      contextStore: core.tier?.stats() ?? null,
      sessions: { open: sessions.size, pinnedPages: sessions.heldPages(), unpinned: sessions.unpinned, expired: sessions.expired },
    };
  }

  setInitProgressCallback(callback: InitProgressCallback): void {
    this.progressCallback = callback;
  }

  getInitProgressCallback(): InitProgressCallback | undefined {
    return this.progressCallback;
  }

  private async unloadModel(): Promise<void> {
    const loaded = this.loaded;
    this.loaded = null;
    if (!loaded) return;
    // Stop every sequence and let a step in flight finish before its buffers go.
    await loaded.core.close();
    loaded.core.model.destroy();
    (await loaded.grammars?.catch(() => null))?.dispose();
  }

  private async keepContext(request: ContextKeepRequest): Promise<KeptContext> {
    const loaded = this.requireLoaded();
    this.requireTier();
    const body = asRecord(request);
    const salt = body.cache_salt;
    if (salt !== undefined && salt !== null && (typeof salt !== 'string' || salt === '')) throw ApiError.invalid('cache_salt', 'cache_salt must be a non-empty string if provided');
    if ((body.messages === undefined) === (body.prompt === undefined)) throw ApiError.invalid('messages', 'a context to keep is given by messages or by a prompt (one of them)');
    let tokens: number[];
    if (Array.isArray(body.prompt)) {
      const vocab = loaded.core.model.config.vocabSize;
      const bad = body.prompt.findIndex((id) => !Number.isInteger(id) || id < 0 || id >= vocab);
      if (bad >= 0) throw ApiError.invalid('prompt', `prompt[${bad}] is not a token id of this model (0 .. ${vocab - 1})`);
      tokens = body.prompt as number[];
    } else if (body.prompt !== undefined && typeof body.prompt !== 'string') {
      throw ApiError.invalid('prompt', 'prompt must be a string or an array of token ids');
    } else {
      // A conversation is kept as its next turn will render it: without a generation prompt.
      tokens = await tokenizeRequest(body.messages !== undefined ? { add_generation_prompt: false, ...body } : body, this.context(loaded));
    }
    const ps = loaded.core.kv.pageSize;
    if (tokens.length < ps) throw ApiError.invalid(body.messages !== undefined ? 'messages' : 'prompt', `a context to keep needs at least one full KV page (${ps} tokens); this one has ${tokens.length}`);
    if (tokens.length > loaded.core.contextLength) throw ApiError.invalid(body.messages !== undefined ? 'messages' : 'prompt', `the context has ${tokens.length} tokens; the model's context is ${loaded.core.contextLength}`);
    return loaded.core.keepContext(tokens, (salt as string | undefined) ?? '');
  }

  private requireTier() {
    const tier = this.requireLoaded().core.tier;
    if (!tier) throw new Error('no context store: the engine was created without the contextStore option');
    return tier;
  }

  /** The grammars of the loaded model (made once), e.g. for benchmarks of their CPU cost. */
  async grammars(): Promise<Grammars> {
    const loaded = this.requireLoaded();
    loaded.grammars ??= Grammars.create(loaded.core.model.tokenizer, loaded.core.model.config.vocabSize);
    loaded.grammars.catch(() => (loaded.grammars = null));
    return loaded.grammars;
  }

  /** One matcher per choice when the request has a grammar; a grammar XGrammar rejects is a 400 naming its field. */
  private async constraints(parsed: ParsedRequest): Promise<Constraint[] | undefined> {
    if (!parsed.grammar) return undefined;
    const { spec, param } = parsed.grammar;
    let compiled;
    try {
      compiled = await (await this.grammars()).compile(spec);
    } catch (e) {
      if (e instanceof GrammarError) throw ApiError.invalid(param, `${param} cannot be compiled: ${e.message}`);
      throw e;
    }
    return Promise.all(Array.from({ length: parsed.prompts.length * parsed.n }, () => compiled.matcher()));
  }

  /** Why the engine cannot serve (its GPU failed), or null while it serves or has no model. */
  get failureReason(): string | null {
    return this.loaded?.core.failureReason ?? null;
  }

  private async createChat(request: ChatCompletionRequestBase, options: RequestOptions = {}): Promise<AsyncIterable<ChatCompletionChunk> | ChatCompletion> {
    const loaded = this.requireServing(1);
    const parsed = await parseChatRequest(request, this.context(loaded));
    const constraints = await this.constraints(parsed);
    const { runs, meta } = this.start(loaded, parsed, options, constraints, (choices) => (this.lastMessage = choices[0]?.text ?? ''));
    if (parsed.stream) return chatChunks(runs, parsed, meta);
    return chatCompletion(await collectChoices(runs), parsed, meta);
  }

  private async createText(request: CompletionCreateParamsBase, options: RequestOptions = {}): Promise<AsyncIterable<Completion> | Completion> {
    const loaded = this.requireServing(1);
    const parsed = await parseCompletionRequest(request, this.context(loaded));
    const constraints = await this.constraints(parsed);
    const { runs, meta } = this.start(loaded, parsed, options, constraints);
    if (parsed.stream) return completionChunks(runs, parsed, meta);
    return textCompletion(await collectChoices(runs), parsed, meta);
  }

  private async createSession(request: SessionCreateRequest = {}, options: RequestOptions = {}): Promise<SessionObject> {
    const { core } = this.requireServing(1);
    const body = asRecord(request);
    const salt = body.cache_salt;
    if (salt !== undefined && salt !== null && (typeof salt !== 'string' || salt === '')) throw ApiError.invalid('cache_salt', 'cache_salt must be a non-empty string if provided');
    if (body.messages !== undefined && body.prompt !== undefined) throw ApiError.invalid('messages', 'a session starts from messages or a prompt, not both');
    const id = core.createSession(salt ?? '');
    try {
      const common = { ...body, session_id: id, max_tokens: 0, stream: false };
      let usage: CompletionUsage | undefined;
      if (body.messages !== undefined) usage = ((await this.createChat({ add_generation_prompt: false, ...common } as ChatCompletionRequestBase, options)) as ChatCompletion).usage;
      else if (body.prompt !== undefined) usage = ((await this.createText(common as CompletionCreateParamsBase, options)) as Completion).usage;
      const session = sessionObject(core, id);
      if (!usage) return session;
      return { ...session, usage: { prompt_tokens: usage.prompt_tokens, prompt_tokens_details: { cached_tokens: usage.prompt_tokens_details.cached_tokens } } };
    } catch (e) {
      core.destroySession(id);
      throw e;
    }
  }

  /** Submits every choice of every prompt at once, so they are batched together. */
  private start(loaded: Loaded, parsed: ParsedRequest, options: RequestOptions, constraints?: Constraint[], onChoices?: (choices: CollectedChoice[]) => void): { runs: ChoiceRun[]; meta: ResponseMeta } {
    try {
      options.signal?.throwIfAborted();
      // Tokenizing gave the event loop away: the engine may have changed or filled up meanwhile.
      if (this.loaded !== loaded) throw ApiError.unavailable('the model was unloaded while the request was read');
      this.requireServing(parsed.prompts.length * parsed.n);
    } catch (e) {
      constraints?.forEach((c) => c.dispose());
      throw e;
    }
    const handles: SeqHandle[] = [];
    const runs: ChoiceRun[] = [];
    try {
      parsed.prompts.forEach((ids, p) => {
        let first: SeqHandle | undefined;
        for (let i = 0; i < parsed.n; i++) {
          // Choices after the first share its prompt pages (n > 1).
          const constraint = constraints?.[p * parsed.n + i];
          const handle = loaded.core.submit(ids, { ...parsed.params(i, ids.length), constraint }, {
            cacheSalt: parsed.sessionId && !parsed.cacheSalt ? undefined : parsed.cacheSalt, sharePromptWith: first, ...parsed.identity,
            ...(parsed.sessionId ? { session: parsed.sessionId } : {}),
          });
          first ??= handle;
          handles.push(handle);
          runs.push({ index: p * parsed.n + i, promptIndex: p, handle });
        }
      });
    } catch (e) {
      handles.forEach((h) => h.abort());
      constraints?.forEach((c) => c.dispose());
      throw e instanceof ApiError ? e : ApiError.invalid(parsed.promptParam, (e as Error).message);
    }
    const abortAll = () => handles.forEach((h) => h.abort());
    options.signal?.addEventListener('abort', abortAll, { once: true });
    const meta: ResponseMeta = {
      id: randomId(),
      created: Math.floor(Date.now() / 1000),
      model: loaded.modelId,
      fingerprint: `wgserve-${loaded.core.model.fingerprint.slice(0, 12)}`,
      tokenizer: loaded.core.model.tokenizer,
      done: (choices) => {
        options.signal?.removeEventListener('abort', abortAll);
        if (choices) onChoices?.(choices);
      },
    };
    return { runs, meta };
  }

  private context(loaded: Loaded) {
    const limits = { maxPromptsPerRequest: this.options.maxPromptsPerRequest, maxChoicesPerRequest: this.options.maxChoicesPerRequest };
    return { model: loaded.core.model, modelId: loaded.modelId, contextLength: loaded.core.contextLength, defaults: loaded.defaults, limits };
  }

  /** The loaded engine, if it serves and has room for `sequences` more (a 503 or a 429 if not). */
  private requireServing(sequences: number): Loaded {
    const loaded = this.requireLoaded();
    const failure = loaded.core.failureReason;
    if (failure) throw ApiError.unavailable(failure);
    const limit = this.options.maxQueuedSequences ?? DEFAULT_MAX_QUEUED_SEQUENCES;
    if (sequences > limit) throw ApiError.invalid('n', `the request asks for ${sequences} choices; this engine queues at most ${limit} sequences`, 'too_many_choices');
    if (loaded.core.activeCount + sequences > limit) throw ApiError.queueFull(loaded.core.activeCount, sequences, limit);
    return loaded;
  }

  private requireLoaded(): Loaded {
    if (!this.loaded) throw ApiError.notLoaded();
    return this.loaded;
  }

  private listModels(): ModelList {
    const loaded = this.loaded;
    const data = loaded ? [{ id: loaded.modelId, object: 'model' as const, created: 0, owned_by: 'wgserve' }] : [];
    return { object: 'list', data };
  }
}

/** Creates an engine and loads `options.model` (when given) before resolving. */
export async function createEngine(options: EngineOptions = {}): Promise<Engine> {
  const engine = new Engine(options);
  if (options.model !== undefined) await loadOrClose(engine, options.model);
  return engine;
}

function requestDefaults(o: ChatOptions): Record<string, number> {
  const keys = ['temperature', 'top_p', 'frequency_penalty', 'presence_penalty', 'repetition_penalty'] as const;
  return Object.fromEntries(keys.filter((k) => o[k] !== undefined).map((k) => [k, o[k] as number]));
}

function sessionObject(core: EngineCore, id: string): SessionObject {
  const info = core.sessionInfo(id);
  return { id: info.id, object: 'session', tokens: info.tokens, pages: info.pages, pinned: info.pinned };
}

function asRecord(value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw ApiError.invalid(null, 'the request must be a JSON object');
  return value as Record<string, unknown>;
}

function singleModel(models: ModelSource[]): ModelSource {
  if (models.length !== 1) throw new Error(`wgserve serves one model per engine; got ${models.length}`);
  return models[0];
}

function modelIdOf(model: Model): string {
  const base = model.source.split(/[\\/]/).pop() ?? model.source;
  return base.replace(/\?.*$/, '').replace(/\.gguf$/i, '') || 'model';
}

function describe(source: ModelSource): string {
  if (typeof source === 'string') return source;
  if (source instanceof URL) return source.href;
  if (typeof Response !== 'undefined' && source instanceof Response) return source.url || 'response';
  if (typeof Blob !== 'undefined' && source instanceof Blob) return (source as File).name ?? 'blob';
  return 'model bytes';
}

function progressReport(p: LoadProgress, started: number, name: string): InitProgressReport {
  const mb = (b: number) => (b / 1e6).toFixed(1);
  const progress = p.phase === 'done' ? 1 : p.totalBytes ? Math.min(1, p.loadedBytes / p.totalBytes) : 0;
  const text = p.phase === 'done' ? `Loaded ${name}` :
    `Loading ${name}: ${mb(p.loadedBytes)}${p.totalBytes ? ` of ${mb(p.totalBytes)}` : ''} MB`;
  return { progress, timeElapsed: (performance.now() - started) / 1000, text };
}

function randomId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/**
 * web-llm's entry point under its own name, so a web-llm app switches by changing its import.
 * `model` is the GGUF (path, URL, Blob/File, bytes) where web-llm takes a model id.
 */
export async function CreateMLCEngine(model: ModelSource | ModelSource[], engineConfig: EngineOptions = {}, chatOpts: ChatOptions | ChatOptions[] = {}): Promise<Engine> {
  const engine = new Engine(engineConfig);
  await loadOrClose(engine, model, chatOpts);
  return engine;
}

/** Loads a model into a new engine; if that fails, the GPU device it opened is closed too. */
async function loadOrClose(engine: Engine, model: ModelSource | ModelSource[], chatOpts?: ChatOptions | ChatOptions[]): Promise<void> {
  try {
    await engine.reload(model, chatOpts);
  } catch (e) {
    await engine.destroy();
    throw e;
  }
}

export { Engine as MLCEngine };

/** The part of web-llm's MLCEngineInterface that wgserve implements, under web-llm's name. */
export type MLCEngineInterface = Pick<Engine, 'chat' | 'completions' | 'reload' | 'unload' | 'resetChat' | 'interruptGenerate' |
  'getMessage' | 'runtimeStatsText' | 'setInitProgressCallback' | 'getInitProgressCallback'>;
