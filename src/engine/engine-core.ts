// The step loop (vLLM's LLMEngine, nano-vllm's llm_engine.py): sequences come in with their
// sampling parameters; every step the scheduler builds one Batch of all of them, the model runs
// it in one GPU submission and samples on the GPU, and only the sampled ids (and logprobs when
// asked for) come back. Each sequence streams its tokens, decoded text and finish through its
// own queue.
import { GpuDeviceLostError } from '../gpu/index.js';
import { defaultKvMemoryBytes, HashPrefixCache, KvCache } from '../kv/index.js';
import { ForwardPass, isQuantizedKv, StreamingDecoder, type KvFormat, type Model, type Numerics, type RowLogprobs, type RowSampling } from '../model/index.js';
import {
  fcfs, KvManager, Scheduler, Sequence, SessionLimitError, WorkflowPolicy, type AdaptiveStarvationOptions, type AdaptiveTtlOptions,
  type FootprintForecastOptions, type KvSession, type ScheduledStep, type SessionInfo,
} from '../scheduler/index.js';
import { AsyncQueue } from './async-queue.js';
import { ContextTier, type ContextStoreConfig } from './context-tier.js';
import type { KeptContext } from '../persist/index.js';
import { ApiError } from './errors.js';
import type { Constraint } from './grammar/index.js';
import { EngineMetrics } from './metrics.js';
import { StopStringMatcher } from './stop-strings.js';

export interface SamplingParams {
  maxTokens: number;
  /** 0 is greedy. */
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  frequencyPenalty: number;
  presencePenalty: number;
  repetitionPenalty: number;
  logitBias: ReadonlyMap<number, number>;
  seed: number;
  /** Token ids that end generation (the model's end-of-turn ids unless ignore_eos). */
  stopIds: readonly number[];
  stopStrings: readonly string[];
  /** Alternatives to report with each token's logprob; undefined: no logprobs. */
  logprobs?: number;
  /**
   * Compute the prompt's KV and generate nothing (max_tokens 0). The sequence runs as one with
   * maxTokens 1 whose sampled token is dropped; it finishes with 'length' and no tokens.
   */
  prefillOnly?: boolean;
  /**
   * The grammar the output must follow (owned by the sequence from submit on, disposed when it
   * ends): masks every step's draw, advances on every token, and ends the sequence ('stop') once
   * the grammar is complete.
   */
  constraint?: Constraint;
}

export type SeqFinishReason = 'stop' | 'length' | 'abort';

export type SeqEvent =
  | { type: 'token'; tokenId: number; text: string; logprobs: RowLogprobs | null }
  | { type: 'finish'; reason: SeqFinishReason; text: string };

export interface SeqTimings {
  promptTokens: number;
  /** Prompt tokens taken from the prefix cache (or shared with the first choice) rather than computed. */
  cachedTokens: number;
  generatedTokens: number;
  arrivedAt: number;
  /** When its first step began (0 until then): arrivedAt to here is its queue time. */
  scheduledAt: number;
  firstTokenAt: number;
  finishedAt: number;
  preemptions: number;
  /** metadata.workflow_id (null: its own one-call workflow) and metadata.agent_id. */
  workflowId: string | null;
  agentId: string | null;
}

export interface SeqHandle {
  readonly id: number;
  readonly events: AsyncIterable<SeqEvent>;
  readonly timings: SeqTimings;
  abort(): void;
}

/** Tuning of the workflow policy's adaptive estimators (README, Agentic workflows). */
export interface WorkflowTuning {
  starvation?: AdaptiveStarvationOptions;
  retention?: AdaptiveTtlOptions;
  forecast?: FootprintForecastOptions;
}

export interface EngineCoreOptions {
  /** GPU memory for the KV cache (default: enough for 16 full contexts, at most 256 MiB). */
  kvMemoryBytes?: number;
  pageSize?: number;
  /**
   * How K and V are stored (default f16). q8_0 and q4_0 (llama.cpp's blocks, quantized as they are
   * written, dequantized inside attention) hold ~1.9x and ~3.6x the tokens in the same memory;
   * the fast kernel set only, and the head dimension must be a multiple of 32.
   */
  kvFormat?: KvFormat;
  /** Most tokens in one step (default 512). */
  maxBatchTokens?: number;
  /** Most sequences running at once (default 64). */
  maxRunningSeqs?: number;
  /**
   * Latency-aware packing of prompts into steps (default true): from the step times it measures,
   * the scheduler adds a second prompt to a step only when that costs the first prompt's first
   * token less than waiting a step costs the second (see Scheduler). False: fill the token budget.
   */
  latencyPacking?: boolean;
  /** Context length (default and maximum: the model's, and what the KV cache holds). */
  contextLength?: number;
  /**
   * The kernel set. 'fast' (default): weights read once per step for every row, and batch
   * invariant: a request's output does not depend on what else is batched, how its prompt was
   * chunked, or whether its prefix came from the cache. 'llama.cpp': every op computes what
   * llama.cpp's x86 CPU build computes, bit for bit (docs/DESIGN.md, Numerics), for parity
   * tests; slower, and not batch invariant.
   */
  numerics?: Numerics;
  /**
   * Automatic prefix caching (default true): full KV pages stay cached after their request and a
   * request whose tokens start with cached pages computes only the rest; n > 1 choices share the
   * prompt's pages. false: every request computes its whole prompt.
   */
  prefixCache?: boolean;
  /**
   * Most KV pages sessions keep referenced between their requests (default: half the pool). Past
   * it, or when running requests need pages, the least recently used session is unpinned: its
   * full pages stay in the prefix cache (evictable) and its next request recomputes what is gone.
   */
  maxSessionPages?: number;
  /** Most sessions open at once (default 256); creating or cloning one more fails (HTTP 429, code too_many_sessions). */
  maxSessions?: number;
  /**
   * A session with no request for this long is unpinned (ms, default 300 000 = 5 minutes;
   * Infinity: never): its pages go to the prefix cache and its next request recomputes what was evicted.
   */
  sessionUnpinAfterMs?: number;
  /**
   * A session with no request for this long is destroyed (ms, default Infinity: never; `wgserve
   * serve` sets 1 hour): later requests naming it get session_not_found.
   */
  sessionExpireAfterMs?: number;
  /**
   * 'fcfs' (default): oldest request first. 'workflow': priority, then least service attained by
   * the request's workflow, prefix affinity and arrival; KV of a finished call is kept for the
   * agent's next call (docs/DESIGN.md, Scheduler).
   */
  policy?: 'fcfs' | 'workflow';
  /**
   * workflow policy: a request waiting longer than this runs next. Default 'adaptive': 8 times the
   * mean queue time of the last 64 calls started and the calls still queued, within 10 s .. 10 min;
   * a number: fixed (ms).
   */
  starvationMs?: number | 'adaptive';
  /**
   * workflow policy: how long a finished call's pages stay pinned for the agent's next call.
   * Default 'adaptive': 1.5 × the 90th percentile of the measured gaps from a call's finish to its
   * agent's next call (the workflow's own, else all workflows'), within 1 s .. 10 min, 10 s before
   * 8 are known; a number: fixed (ms; 0: nothing kept).
   */
  retentionTtlMs?: number | 'adaptive';
  /** workflow policy: service levels double from this many tokens (default 256; 1: exact least attained service). */
  serviceQuantumTokens?: number;
  /** workflow policy: hold calls of new workflows while their context does not fit beside the live ones (default true). */
  workflowAdmission?: boolean;
  /**
   * workflow policy: a call of a live workflow waits for free pages rather than evict pages kept for
   * other agents' next calls. 'auto' (default): only where recomputing a page costs more than 4
   * steps' fixed cost (a CPU adapter such as SwiftShader), judged from the measured step cost.
   */
  workflowHoldForKeptPages?: boolean | 'auto';
  /** workflow policy: a workflow with no call for this long ends (ms; default 60 000, and not before its kept pages' TTL lapses). */
  workflowIdleTimeoutMs?: number;
  /**
   * workflow policy: admission counts the live workflows' agent contexts as long as they are
   * expected to grow by their agents' last calls (default true: growth per call measured, calls to
   * come learnt from ended workflows); false: as long as they are now.
   */
  workflowForecastGrowth?: boolean;
  /** workflow policy: tuning of its adaptive estimators (starvation bound, retention TTL, growth forecast). */
  workflowTuning?: WorkflowTuning;
  /** Workflows with their own entries in the metrics (default 32); older ones are aggregated. */
  metricsWorkflows?: number;
  /**
   * The context store: full KV pages are written through, compressed (q8_0 by default), to a
   * directory (Node) or IndexedDB (browsers), and a request whose prompt continues past what GPU
   * memory caches restores the pages the store holds instead of prefilling them (README, Context
   * store). Default: none (the browser engines default to IndexedDB).
   */
  contextStore?: ContextStoreConfig;
}

/**
 * Loads the model again on a new GPU device after `lost` (the engine's device was lost), reading
 * its bytes without a new download; throws when it cannot (the engine then stops serving).
 */
export type ModelReopener = (lost: Error) => Promise<Model>;

export interface SubmitOptions {
  /** Prefix-cache salt: sequences with different salts never share a page. */
  cacheSalt?: string;
  /** Another choice of the same prompt, still running or waiting: share its prompt pages. */
  sharePromptWith?: SeqHandle;
  /** The workflow and agent making the call (metadata.workflow_id / agent_id). */
  workflowId?: string | null;
  agentId?: string | null;
  /** Lower runs earlier (default 0). */
  priority?: number;
  /** The session (EngineCore.createSession) the request continues and whose context it becomes. */
  session?: string;
}

class SeqState {
  readonly decoder: StreamingDecoder;
  readonly stops: StopStringMatcher;
  readonly outputCounts = new Map<number, number>();
  readonly promptTokens: ReadonlySet<number>;
  readonly queue: AsyncQueue<SeqEvent>;
  readonly timings: SeqTimings;
  /** Set when the engine, not the scheduler, decides why the sequence ends (a stop string, a complete grammar). */
  reason: SeqFinishReason | null = null;
  /** Set when a failed step ends the sequence: its stream fails with this instead of finishing. */
  error: ApiError | null = null;
  /** A stop string ended the text: what the decoder still holds is dropped. */
  cutAtStop = false;

  constructor(readonly seq: Sequence, readonly params: SamplingParams, model: Model, onCancel: () => void) {
    this.decoder = new StreamingDecoder(model.tokenizer);
    this.stops = new StopStringMatcher(params.stopStrings);
    this.promptTokens = new Set(seq.promptIds);
    this.queue = new AsyncQueue<SeqEvent>(onCancel);
    const now = performance.now();
    this.timings = {
      promptTokens: seq.numPromptTokens, cachedTokens: 0, generatedTokens: 0, arrivedAt: now, scheduledAt: 0, firstTokenAt: 0, finishedAt: 0, preemptions: 0,
      workflowId: seq.workflowId, agentId: seq.agentId,
    };
  }

  rowSampling(): RowSampling {
    const p = this.params;
    return {
      temperature: p.temperature,
      seed: p.seed,
      counter: this.seq.generated.length,
      topK: p.topK,
      topP: p.topP,
      minP: p.minP,
      frequencyPenalty: p.frequencyPenalty,
      presencePenalty: p.presencePenalty,
      repetitionPenalty: p.repetitionPenalty,
      outputCounts: this.outputCounts,
      promptTokens: this.promptTokens,
      logitBias: p.logitBias,
      logprobs: p.logprobs,
    };
  }
}

export class EngineCore {
  private currentModel: Model;
  private currentKv: KvCache;
  private currentForward: ForwardPass;
  readonly scheduler: Scheduler;
  readonly kvManager: KvManager;
  readonly metrics: EngineMetrics;
  /** Whether KV pages are shared between requests and choices (the prefixCache option). */
  readonly prefixCache: boolean;
  /** The workflow policy, or null under fcfs. */
  readonly workflowPolicy: WorkflowPolicy | null;
  private readonly states = new Map<number, SeqState>();
  /** The context store wired to the prefix cache, or null. */
  tier: ContextTier | null = null;
  private nextId = 0;
  private loop: Promise<void> | null = null;
  /** Work that must run between steps (betweenSteps), run by the loop before its next step. */
  private readonly boundaryJobs: (() => void)[] = [];
  /** Sequences the scheduler finished inside commit(): their last token is delivered first. */
  private committing = false;
  private readonly finishedInCommit: Sequence[] = [];
  private failure: Error | null = null;
  private destroyed = false;
  private failedResolve: (error: Error) => void = () => {};
  /** The device loss the step loop must recover from before its next step. */
  private lossPending: Error | null = null;
  /** Recoveries since the last step that completed: a device lost again at once is not retried forever. */
  private recoveriesSinceStep = 0;
  /** Device losses recovered from (the engine got a new device and recomputed its sequences). */
  recoveries = 0;
  private static readonly MAX_RECOVERIES_WITHOUT_A_STEP = 3;
  /** Resolves with the reason when the engine gives up serving (its GPU device is lost or broken). */
  readonly failed = new Promise<Error>((resolve) => (this.failedResolve = resolve));
  /** How long the self-check after a failed step may wait for the GPU. */
  private static readonly CHECK_TIMEOUT_MS = 30_000;

  /** Sets up the KV cache (a GpuOutOfMemoryError if the device cannot hold it) and the step loop. */
  static async create(model: Model, options: EngineCoreOptions = {}, reopen?: ModelReopener): Promise<EngineCore> {
    const c = model.config;
    const wanted = Math.min(options.contextLength ?? c.contextLength, c.contextLength);
    if (isQuantizedKv(options.kvFormat ?? 'f16') && (options.numerics ?? 'fast') !== 'fast') {
      throw new Error(`kvFormat ${options.kvFormat} needs numerics 'fast': the llama.cpp kernel set reads f32 and f16 KV caches only`);
    }
    const kv = await KvCache.allocate(model.rt, c, {
      pageSize: options.pageSize,
      format: options.kvFormat,
      memoryBytes: options.kvMemoryBytes ?? defaultKvMemoryBytes(c, wanted, options.kvFormat),
    });
    // A context longer than the whole cache could never be filled: serve what it holds.
    const core = new EngineCore(model, kv, Math.min(wanted, kv.tokenCapacity), options, reopen);
    try {
      core.tier = await openContextTier(options, model, kv, core.kvManager);
    } catch (e) {
      core.destroy();
      throw e;
    }
    return core;
  }

  private constructor(model: Model, kv: KvCache, readonly contextLength: number, options: EngineCoreOptions, private readonly reopen?: ModelReopener) {
    this.currentModel = model;
    this.currentKv = kv;
    this.currentForward = new ForwardPass(model, { numerics: options.numerics });
    this.prefixCache = options.prefixCache ?? true;
    const cache = this.prefixCache ? new HashPrefixCache(kv.pool, kv.pageSize, model.fingerprint) : undefined;
    this.kvManager = new KvManager(kv.pool, kv.pageSize, cache);
    this.metrics = new EngineMetrics(this.kvManager, options.metricsWorkflows);
    const policy = options.policy ?? 'fcfs';
    if (policy !== 'fcfs' && policy !== 'workflow') throw new Error(`policy must be 'fcfs' or 'workflow', got ${JSON.stringify(policy)}`);
    this.workflowPolicy = policy === 'workflow' ? new WorkflowPolicy({
      kv: this.kvManager, starvationMs: options.starvationMs, retentionTtlMs: options.retentionTtlMs, idleTimeoutMs: options.workflowIdleTimeoutMs,
      serviceQuantumTokens: options.serviceQuantumTokens, admission: options.workflowAdmission, holdForKeptPages: options.workflowHoldForKeptPages,
      forecastGrowth: options.workflowForecastGrowth, contextLength, adaptiveStarvation: options.workflowTuning?.starvation,
      adaptiveRetention: options.workflowTuning?.retention, footprintForecast: options.workflowTuning?.forecast,
    }) : null;
    if (this.workflowPolicy) {
      this.workflowPolicy.onEnded = (id) => this.metrics.workflows.end(id);
      const p = this.workflowPolicy;
      this.metrics.retainedPagesOf = (w, a) => p.retainedPages(w, a);
      this.metrics.policyFigures = () => ({
        starvationBoundMs: p.starvationBoundMs(), starvationAdaptive: p.starvation.adaptive,
        retentionTtlMs: p.retentionTtlMs(), retentionTtlSource: p.retentionTtlSource(), gapsMeasured: p.ttl.global.count, gapsNeeded: p.ttl.minGaps,
        reservedPages: p.reservedPages(), growthTokensPerCall: p.forecast ? p.forecast.growthPerCall(0) : null,
        callsLearnt: p.forecast?.learnedCalls ?? false, keptPagesEvicted: this.kvManager.pool.pinnedEvictions,
      });
    }
    this.scheduler = new Scheduler({
      kv: this.kvManager,
      contextLength,
      maxBatchTokens: options.maxBatchTokens,
      maxRunningSeqs: options.maxRunningSeqs,
      latencyPacking: options.latencyPacking,
      policy: this.workflowPolicy ?? fcfs,
      onFinished: (seq) => (this.committing ? this.finishedInCommit.push(seq) : this.finished(seq)),
      maxSessionPages: options.maxSessionPages,
      maxSessions: options.maxSessions,
      sessionUnpinAfterMs: options.sessionUnpinAfterMs,
      sessionExpireAfterMs: options.sessionExpireAfterMs,
    });
    this.reserveStepBuffers(this.currentForward);
    this.watchDevice(model);
  }

  /** Sizes the forward pass's buffers for the largest step the scheduler can make: no step allocates GPU memory after. */
  private reserveStepBuffers(forward: ForwardPass): void {
    const s = this.scheduler;
    forward.reserve({
      tokens: Math.max(s.maxBatchTokens, s.maxRunningSeqs),
      seqs: s.maxRunningSeqs,
      contextLength: this.contextLength,
      pageSize: this.currentKv.pageSize,
    });
  }

  /** The model; a new one (same file, new device) after a recovery. */
  get model(): Model {
    return this.currentModel;
  }

  get kv(): KvCache {
    return this.currentKv;
  }

  get forward(): ForwardPass {
    return this.currentForward;
  }

  /** Why the engine is recovering from a lost device right now, or null. */
  get recoveringFrom(): string | null {
    return this.lossPending?.message ?? null;
  }

  private watchDevice(model: Model): void {
    // Weakly: a runtime outlives the cores of every model loaded on it, and must not keep them.
    const core = new WeakRef(this);
    void model.rt.gpu.lost.then((lost) => core.deref()?.deviceLost(model, lost));
  }

  private deviceLost(model: Model, lost: Error): void {
    if (this.destroyed || this.failure || model !== this.currentModel) return;
    this.lossPending ??= lost;
    this.wake();
  }

  /** Why the engine stopped serving, or null while it serves. */
  get failureReason(): string | null {
    return this.failure?.message ?? null;
  }

  /** Sequences waiting or running. */
  get activeCount(): number {
    return this.states.size;
  }

  /**
   * Queues a sequence. Throws (and queues nothing) if it can never run: a prompt that does not
   * fit the context or the KV pool, or an engine whose GPU failed.
   */
  submit(promptIds: readonly number[], params: SamplingParams, options: SubmitOptions = {}): SeqHandle {
    if (this.destroyed) throw ApiError.unavailable('the model was unloaded');
    if (this.failure) throw ApiError.unavailable(this.failure.message);
    const leader = this.prefixCache && options.sharePromptWith ? this.scheduler.get(options.sharePromptWith.id) : undefined;
    const maxTokens = params.prefillOnly ? 1 : params.maxTokens;
    const session = options.session === undefined ? null : this.requireSession(options.session);
    if (session && options.cacheSalt !== undefined && options.cacheSalt !== session.salt) {
      throw ApiError.invalid('cache_salt', `cache_salt differs from the one session ${session.id} was created with`);
    }
    const seq = new Sequence({
      id: this.nextId++, promptIds, maxTokens, stopIds: params.stopIds, cacheSalt: session?.salt ?? options.cacheSalt, sharePromptWith: leader,
      workflowId: options.workflowId, agentId: options.agentId, priority: options.priority, session,
    });
    const state = new SeqState(seq, params, this.model, () => this.abort(seq.id));
    this.scheduler.add(seq);
    this.tier?.lookup(seq);
    this.states.set(seq.id, state);
    this.wake();
    return { id: seq.id, events: state.queue, timings: state.timings, abort: () => this.abort(seq.id) };
  }

  /**
   * Ends a workflow: pages kept for its agents go back to plain LRU, and its completion time (first
   * arrival to last finish) is recorded. False if the engine knows no open workflow of that id.
   */
  endWorkflow(workflowId: string): boolean {
    const open = this.workflowPolicy?.end(workflowId) ?? false;
    // The policy's onEnded already recorded it; under fcfs the metrics are the only record.
    return this.metrics.workflows.end(workflowId) || open;
  }

  /** A new, empty session (SubmitOptions.session names it); its requests share `cacheSalt`. */
  createSession(cacheSalt = ''): string {
    this.requireServing();
    return withSessionLimit(() => this.scheduler.sessions.create(cacheSalt).id);
  }

  /** A session with the context of `id`, referencing its pages: nothing is computed. */
  cloneSession(id: string): string {
    this.requireServing();
    const parent = this.requireSession(id).id;
    return withSessionLimit(() => this.scheduler.sessions.clone(parent).id);
  }

  /** Releases a session's pages; false if there is no such session. Requests under way on it go on (and no longer update it). */
  destroySession(id: string): boolean {
    return this.scheduler.sessions.destroy(id);
  }

  sessionInfo(id: string): SessionInfo {
    const info = this.scheduler.sessions.info(id);
    if (!info) throw ApiError.sessionNotFound(id);
    return info;
  }

  private requireSession(id: string): KvSession {
    const session = this.scheduler.sessions.get(id);
    if (!session) throw ApiError.sessionNotFound(id);
    return session;
  }

  private requireServing(): void {
    if (this.destroyed) throw ApiError.unavailable('the model was unloaded');
    if (this.failure) throw ApiError.unavailable(this.failure.message);
  }

  /**
   * Keeps the full pages of `tokens` (under `cacheSalt`) in the context store, computing them if
   * neither the store nor GPU memory has them (ContextTier.keep).
   */
  async keepContext(tokens: readonly number[], cacheSalt = ''): Promise<KeptContext> {
    this.requireServing();
    if (!this.tier) throw new Error('no context store: the engine was created without the contextStore option');
    return this.tier.keep(tokens, cacheSalt, {
      betweenSteps: (job) => this.betweenSteps(() => job(this.model, this.kv)),
      prefill: async (ids) => {
        const params: SamplingParams = { maxTokens: 0, temperature: 0, topK: 0, topP: 1, minP: 0, frequencyPenalty: 0, presencePenalty: 0, repetitionPenalty: 1,
          logitBias: new Map(), seed: 0, stopIds: [], stopStrings: [], prefillOnly: true };
        for await (const e of this.submit(ids, params, { cacheSalt: cacheSalt || undefined }).events) void e;
      },
    });
  }

  /** Runs `job` where no step is half-recorded: now if the loop is idle, else before its next step. */
  private betweenSteps<T>(job: () => T): Promise<T> {
    if (!this.loop) {
      try {
        return Promise.resolve(job());
      } catch (e) {
        return Promise.reject(asError(e));
      }
    }
    return new Promise<T>((resolve, reject) => this.boundaryJobs.push(() => {
      try {
        resolve(job());
      } catch (e) {
        reject(asError(e));
      }
    }));
  }

  private runBoundaryJobs(): void {
    for (const job of this.boundaryJobs.splice(0)) job();
  }

  /** Stops a sequence now and frees its pages; its stream ends with finish reason 'abort'. */
  abort(id: number): void {
    this.scheduler.abort(id);
  }

  abortAll(): void {
    for (const id of [...this.states.keys()]) this.abort(id);
  }

  /** Resolves when no sequence is left (for tests and shutdown). */
  async idle(): Promise<void> {
    while (this.loop) await this.loop;
  }

  /** Stops serving: waits for the context store's writes (pages still on the GPU are read first), then destroy(). */
  async close(): Promise<void> {
    this.abortAll();
    await this.idle();
    await this.tier?.drain().catch(() => {});
    this.destroy();
    await this.tier?.close().catch(() => {});
  }

  destroy(): void {
    if (this.destroyed) return;
    this.abortAll();
    this.destroyed = true;
    this.forward.destroy();
    this.kv.destroy();
  }

  private wake(): void {
    if (this.loop) return;
    this.loop = this.run().finally(() => {
      this.loop = null;
      this.runBoundaryJobs();
    });
  }

  private async run(): Promise<void> {
    try {
      while ((this.scheduler.hasWork || this.lossPending) && !this.destroyed && !this.failure) {
        if (this.lossPending) {
          await this.recover(this.lossPending);
          continue;
        }
        this.runBoundaryJobs();
        if (this.tier?.hasReady) await this.tier.restoreReady(this.model, this.kv);
        const step = this.scheduler.schedule();
        if (step) {
          await this.runIsolated(step);
          // Pages the step filled, compressed for the context store before anything reuses them.
          if (!this.lossPending) this.tier?.writeIndexed(this.model, this.kv);
        } else if (this.tier?.isLoading) {
          await this.tier.loaded();
        }
        // Let requests and aborts that arrived during the step in before the next one.
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
    } catch (e) {
      this.fail(asError(e));
    }
  }

  /**
   * Runs a step; if it fails, the engine checks that its GPU still works. If it does, only the
   * step's sequences end (with a server error); if not, the device counts as lost: the step is
   * dropped and the loop recovers (recover()) before it goes on.
   */
  private async runIsolated(step: ScheduledStep): Promise<void> {
    try {
      await this.runStep(step);
      this.recoveriesSinceStep = 0;
    } catch (e) {
      const error = asError(e);
      const broken = error instanceof GpuDeviceLostError ? error.message : await this.selfCheck();
      if (broken) {
        this.committing = false;
        this.lossPending ??= new Error(broken === error.message ? broken : `${broken} (after a step failed: ${error.message})`);
        return;
      }
      this.endStep(step, ApiError.generationFailed(error.message));
    }
  }

  /**
   * After a device loss: every running sequence is preempted (the step in flight is dropped), the
   * prefix cache forgets its pages (their K/V were on the lost device), the model is loaded again
   * on a new device (`reopen`), and the KV cache and the forward pass are rebuilt there. The
   * sequences then recompute their tokens (prompt and generated so far) like preempted ones, so
   * they go on with the output they would have had. If that fails, the engine stops serving.
   */
  private async recover(lost: Error): Promise<void> {
    if (!this.reopen) return this.fail(lost);
    if (this.recoveriesSinceStep >= EngineCore.MAX_RECOVERIES_WITHOUT_A_STEP) {
      return this.fail(new Error(`${lost.message} (the GPU device was lost ${this.recoveriesSinceStep + 1} times without completing a step; giving up)`));
    }
    this.recoveriesSinceStep++;
    for (const seq of this.finishedInCommit.splice(0)) this.finished(seq);
    this.scheduler.preemptAll();
    // Sessions' K/V went with the device: their next requests compute their context again.
    while (this.scheduler.sessions.unpinLeastRecent());
    this.kvManager.dropCachedPages();
    this.tier?.dropQueued();
    const old = { model: this.currentModel, kv: this.currentKv, forward: this.currentForward };
    old.forward.destroy();
    old.kv.destroy();
    old.model.destroy();
    let model: Model | null = null;
    try {
      model = await this.reopen(lost);
      if (this.destroyed) return model.destroy();
      if (model.fingerprint !== old.model.fingerprint) throw new Error(`the model read again is not the one loaded (${model.source} changed)`);
      const kv = await KvCache.reallocate(model.rt, old.kv);
      this.currentForward = new ForwardPass(model, { numerics: old.forward.numerics });
      this.currentKv = kv;
      this.reserveStepBuffers(this.currentForward);
      this.currentModel = model;
      this.lossPending = null;
      this.recoveries++;
      this.watchDevice(model);
      if (model.rt.gpu.lostError) this.deviceLost(model, model.rt.gpu.lostError);
    } catch (e) {
      if (model && model !== this.currentModel) model.destroy();
      this.fail(new Error(`${lost.message}; recovery failed: ${asError(e).message}`));
    }
  }

  /** Ends every sequence of a failed step with `error`, frees their pages and closes the step. */
  private endStep(step: ScheduledStep, error: ApiError): void {
    this.committing = false;
    for (const { seq } of step.seqs) {
      const state = this.states.get(seq.id);
      if (state) state.error = error;
      this.scheduler.abort(seq.id);
    }
    for (const seq of this.finishedInCommit.splice(0)) this.finished(seq);
    try {
      // Sequences of the step are aborted, so the commit only clears the step in flight.
      this.scheduler.commit(step, new Array<number>(step.seqs.filter((s) => s.samples).length).fill(-1));
    } catch {
      // Already committed when the failure came after the commit.
    }
  }

  /** Why the GPU cannot serve any more, or null when it finishes work as it should. */
  private async selfCheck(): Promise<string | null> {
    const gpu = this.model.rt.gpu;
    if (gpu.lostError) return gpu.lostError.message;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<string>((resolve) => {
      timer = setTimeout(() => resolve(`the GPU did not finish its work within ${EngineCore.CHECK_TIMEOUT_MS / 1000} s`), EngineCore.CHECK_TIMEOUT_MS);
    });
    try {
      return await Promise.race([this.model.rt.sync().then(() => null), timeout]);
    } catch (e) {
      return asError(e).message;
    } finally {
      clearTimeout(timer);
    }
  }

  private async runStep(step: ScheduledStep): Promise<void> {
    const start = performance.now();
    for (const { seq } of step.seqs) {
      const state = this.states.get(seq.id);
      if (state && !state.timings.scheduledAt) state.timings.scheduledAt = start;
    }
    const sampled = step.seqs.filter((s) => s.samples).map(({ seq }) => seq);
    const sampling = sampled.map((seq) => this.states.get(seq.id)!.rowSampling());
    // The grammars' masks are built on the CPU while the GPU runs the forward pass (a mask that
    // allows every token stays off the GPU).
    const constrained = sampled.flatMap((seq, row) => {
      const { constraint, prefillOnly } = this.states.get(seq.id)!.params;
      return constraint && !prefillOnly ? [{ row, constraint }] : [];
    });
    const fillMasks = async () => {
      for (const { row, constraint } of constrained) sampling[row].mask = (await constraint.nextMask()) ?? undefined;
    };
    // The step's copy-on-write page copies, recorded into the submission ahead of its forward pass.
    this.kv.copyPages(step.kvOps);
    // Reads back logprobs only when a row asks for them.
    const { ids, logprobs } = await this.forward.sampleWithLogprobs(step.batch, this.kv, sampling, constrained.length ? fillMasks : undefined);
    this.committing = true;
    let appended;
    try {
      appended = this.scheduler.commit(step, ids).appended;
    } finally {
      this.committing = false;
    }
    const stepMs = performance.now() - start;
    this.metrics.recordStep(step, stepMs, this.kv.pool);
    this.scheduler.stepCost?.observe(step.batch.tokenIds.length, stepMs);
    for (const { seq } of step.seqs) {
      const state = this.states.get(seq.id);
      if (state && seq.cachedTokens !== null) state.timings.cachedTokens = seq.cachedTokens;
    }
    for (const { seq, tokenId } of appended) {
      const state = this.states.get(seq.id);
      if (state && !state.params.prefillOnly) this.deliver(state, tokenId, logprobs[sampled.indexOf(seq)] ?? null);
    }
    for (const seq of this.finishedInCommit.splice(0)) this.finished(seq);
  }

  /** Decodes a sampled token, checks stop strings and streams it. */
  private deliver(state: SeqState, tokenId: number, logprobs: RowLogprobs | null): void {
    const now = performance.now();
    state.timings.firstTokenAt ||= now;
    state.timings.generatedTokens++;
    state.outputCounts.set(tokenId, (state.outputCounts.get(tokenId) ?? 0) + 1);
    const { text, stopped } = state.stops.push(state.decoder.push(tokenId));
    state.queue.push({ type: 'token', tokenId, text, logprobs });
    const constraint = state.params.constraint;
    if (constraint && !constraint.accept(tokenId)) {
      // The mask allows only what the matcher accepts, so this is a bug, not a model's choice.
      state.error = ApiError.generationFailed(`the grammar rejected token ${tokenId}, which its own mask allowed`);
      this.scheduler.abort(state.seq.id);
      return;
    }
    if (!stopped && !constraint?.terminated) return;
    state.reason = 'stop';
    state.cutAtStop = stopped;
    if (!state.seq.isFinished) this.scheduler.abort(state.seq.id);
  }

  /** Every finished sequence passes here once (stop, length, abort), with its pages already freed. */
  private finished(seq: Sequence): void {
    const state = this.states.get(seq.id);
    if (!state) return;
    this.states.delete(seq.id);
    state.params.constraint?.dispose();
    if (state.error) {
      state.queue.fail(state.error);
      return;
    }
    // A prefill-only sequence that ended on its dropped token (an end-of-turn id) still ends by length.
    const prefilled = state.params.prefillOnly && seq.finishReason === 'stop';
    const reason = state.reason ?? (prefilled ? 'length' : seq.finishReason) ?? 'abort';
    // A stop string ends the text where it starts; otherwise what was held back is text.
    const tail = state.cutAtStop ? '' : state.stops.push(state.decoder.flush()).text + state.stops.flush();
    state.timings.finishedAt = performance.now();
    state.timings.preemptions = seq.preemptions;
    this.metrics.recordFinished(state.timings);
    state.queue.push({ type: 'finish', reason, text: tail });
    state.queue.close();
  }

  /** The GPU cannot serve any more (lost, or broken after a failed step): every sequence ends with a 503. */
  private fail(error: Error): void {
    if (this.failure) return;
    this.failure = error;
    this.lossPending = null;
    const unavailable = ApiError.unavailable(error.message);
    for (const [id, state] of [...this.states]) {
      state.error = unavailable;
      this.scheduler.abort(id);
      this.finished(state.seq);
    }
    this.failedResolve(error);
  }
}

/**
 * The contextStore option's tier. Unset: IndexedDB where there is IndexedDB (browsers, their
 * workers) and the prefix cache is on, none elsewhere; a default store that cannot be opened
 * (IndexedDB blocked) leaves the engine without one, with a warning.
 */
async function openContextTier(options: EngineCoreOptions, model: Model, kv: KvCache, manager: KvManager): Promise<ContextTier | null> {
  if (options.contextStore) return ContextTier.open(options.contextStore, model, kv, manager);
  if (typeof indexedDB === 'undefined' || options.prefixCache === false) return null;
  try {
    return await ContextTier.open({ kind: 'indexeddb' }, model, kv, manager);
  } catch (e) {
    console.warn(`wgserve: no context store (IndexedDB could not be opened: ${asError(e).message})`);
    return null;
  }
}

function asError(e: unknown): Error {
  return e instanceof Error ? e : new Error(String(e));
}

/** `open` as an API error (HTTP 429) when it throws SessionLimitError. */
function withSessionLimit<T>(open: () => T): T {
  try {
    return open();
  } catch (e) {
    if (e instanceof SessionLimitError) throw ApiError.tooManySessions(e.limit);
    throw e;
  }
}
