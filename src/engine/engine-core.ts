// The step loop (vLLM's LLMEngine, nano-vllm's llm_engine.py): sequences come in with their
// sampling parameters; every step the scheduler builds one Batch of all of them, the model runs
// it in one GPU submission and samples on the GPU, and only the sampled ids (and logprobs when
// asked for) come back. Each sequence streams its tokens, decoded text and finish through its
// own queue.
import { defaultKvMemoryBytes, KvCache } from '../kv/index.js';
import { ForwardPass, StreamingDecoder, type Model, type Numerics, type RowLogprobs, type RowSampling } from '../model/index.js';
import { KvManager, Scheduler, Sequence, type ScheduledStep } from '../scheduler/index.js';
import { AsyncQueue } from './async-queue.js';
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
}

export type SeqFinishReason = 'stop' | 'length' | 'abort';

export type SeqEvent =
  | { type: 'token'; tokenId: number; text: string; logprobs: RowLogprobs | null }
  | { type: 'finish'; reason: SeqFinishReason; text: string };

export interface SeqTimings {
  promptTokens: number;
  generatedTokens: number;
  arrivedAt: number;
  firstTokenAt: number;
  finishedAt: number;
  preemptions: number;
}

export interface SeqHandle {
  readonly id: number;
  readonly events: AsyncIterable<SeqEvent>;
  readonly timings: SeqTimings;
  abort(): void;
}

export interface EngineCoreOptions {
  /** GPU memory for the KV cache (default: enough for 16 full contexts, at most 256 MiB). */
  kvMemoryBytes?: number;
  pageSize?: number;
  kvFormat?: 'f32' | 'f16';
  /** Most tokens in one step (default 512). */
  maxBatchTokens?: number;
  /** Most sequences running at once (default 64). */
  maxRunningSeqs?: number;
  /** Context length (default and maximum: the model's, and what the KV cache holds). */
  contextLength?: number;
  /**
   * 'llama.cpp' (default): every op computes what llama.cpp's CPU build computes, bit for bit, so
   * outputs match it token for token (docs/DESIGN.md, Numerics); costs arithmetic. 'exact': plain
   * f32 math and the fastest kernels.
   */
  numerics?: Numerics;
}

class SeqState {
  readonly decoder: StreamingDecoder;
  readonly stops: StopStringMatcher;
  readonly outputCounts = new Map<number, number>();
  readonly promptTokens: ReadonlySet<number>;
  readonly queue: AsyncQueue<SeqEvent>;
  readonly timings: SeqTimings;
  /** Set when the engine, not the scheduler, decides why the sequence ends (a stop string). */
  reason: SeqFinishReason | null = null;

  constructor(readonly seq: Sequence, readonly params: SamplingParams, model: Model, onCancel: () => void) {
    this.decoder = new StreamingDecoder(model.tokenizer);
    this.stops = new StopStringMatcher(params.stopStrings);
    this.promptTokens = new Set(seq.promptIds);
    this.queue = new AsyncQueue<SeqEvent>(onCancel);
    const now = performance.now();
    this.timings = { promptTokens: seq.numPromptTokens, generatedTokens: 0, arrivedAt: now, firstTokenAt: 0, finishedAt: 0, preemptions: 0 };
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
  readonly forward: ForwardPass;
  readonly scheduler: Scheduler;
  readonly metrics = new EngineMetrics();
  private readonly states = new Map<number, SeqState>();
  private nextId = 0;
  private loop: Promise<void> | null = null;
  /** Sequences the scheduler finished inside commit(): their last token is delivered first. */
  private committing = false;
  private readonly finishedInCommit: Sequence[] = [];
  private failure: Error | null = null;
  private destroyed = false;

  /** Sets up the KV cache (a GpuOutOfMemoryError if the device cannot hold it) and the step loop. */
  static async create(model: Model, options: EngineCoreOptions = {}): Promise<EngineCore> {
    const c = model.config;
    const wanted = Math.min(options.contextLength ?? c.contextLength, c.contextLength);
    const kv = await KvCache.allocate(model.rt, c, {
      pageSize: options.pageSize,
      format: options.kvFormat,
      memoryBytes: options.kvMemoryBytes ?? defaultKvMemoryBytes(c, wanted, options.kvFormat),
    });
    // A context longer than the whole cache could never be filled: serve what it holds.
    return new EngineCore(model, kv, Math.min(wanted, kv.tokenCapacity), options);
  }

  private constructor(readonly model: Model, readonly kv: KvCache, readonly contextLength: number, options: EngineCoreOptions) {
    this.forward = new ForwardPass(model, { numerics: options.numerics });
    this.scheduler = new Scheduler({
      kv: new KvManager(kv.pool, kv.pageSize),
      contextLength,
      maxBatchTokens: options.maxBatchTokens,
      maxRunningSeqs: options.maxRunningSeqs,
      onFinished: (seq) => (this.committing ? this.finishedInCommit.push(seq) : this.finished(seq)),
    });
  }

  /** Sequences waiting or running. */
  get activeCount(): number {
    return this.states.size;
  }

  /**
   * Queues a sequence. Throws (and queues nothing) if it can never run: a prompt that does not
   * fit the context or the KV pool, or an engine whose GPU failed.
   */
  submit(promptIds: readonly number[], params: SamplingParams): SeqHandle {
    if (this.destroyed) throw new Error('the engine was unloaded');
    if (this.failure) throw new Error(`the engine stopped after an error: ${this.failure.message}`);
    const seq = new Sequence({ id: this.nextId++, promptIds, maxTokens: params.maxTokens, stopIds: params.stopIds });
    const state = new SeqState(seq, params, this.model, () => this.abort(seq.id));
    this.scheduler.add(seq);
    this.states.set(seq.id, state);
    this.wake();
    return { id: seq.id, events: state.queue, timings: state.timings, abort: () => this.abort(seq.id) };
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

  destroy(): void {
    if (this.destroyed) return;
    this.abortAll();
    this.destroyed = true;
    this.forward.destroy();
    this.kv.destroy();
  }

  private wake(): void {
    if (this.loop) return;
    this.loop = this.run().finally(() => (this.loop = null));
  }

  private async run(): Promise<void> {
    try {
      while (this.scheduler.hasWork && !this.destroyed) {
        const step = this.scheduler.schedule();
        if (step) await this.runStep(step);
        // Let requests and aborts that arrived during the step in before the next one.
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
    } catch (e) {
      this.fail(e instanceof Error ? e : new Error(String(e)));
    }
  }

  private async runStep(step: ScheduledStep): Promise<void> {
    const start = performance.now();
    const sampled = step.seqs.filter((s) => s.samples).map(({ seq }) => seq);
    const sampling = sampled.map((seq) => this.states.get(seq.id)!.rowSampling());
    // Reads back logprobs only when a row asks for them.
    const { ids, logprobs } = await this.forward.sampleWithLogprobs(step.batch, this.kv, sampling);
    this.committing = true;
    let appended;
    try {
      appended = this.scheduler.commit(step, ids).appended;
    } finally {
      this.committing = false;
    }
    this.metrics.recordStep(step, performance.now() - start, this.kv.pool);
    for (const { seq, tokenId } of appended) {
      const state = this.states.get(seq.id);
      if (state) this.deliver(state, tokenId, logprobs[sampled.indexOf(seq)] ?? null);
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
    if (!stopped) return;
    state.reason = 'stop';
    if (!state.seq.isFinished) this.scheduler.abort(state.seq.id);
  }

  /** Every finished sequence passes here once (stop, length, abort), with its pages already freed. */
  private finished(seq: Sequence): void {
    const state = this.states.get(seq.id);
    if (!state) return;
    this.states.delete(seq.id);
    const reason = state.reason ?? seq.finishReason ?? 'abort';
    // A stop string ends the text where it starts; otherwise what was held back is text.
    const tail = reason === 'stop' && state.reason ? '' : state.stops.push(state.decoder.flush()).text + state.stops.flush();
    state.timings.finishedAt = performance.now();
    state.timings.preemptions = seq.preemptions;
    this.metrics.recordFinished(state.timings);
    state.queue.push({ type: 'finish', reason, text: tail });
    state.queue.close();
  }

  /** A step failed (a lost GPU device, most likely): every sequence ends with the error. */
  private fail(error: Error): void {
    this.failure = error;
    for (const [id, state] of [...this.states]) {
      this.states.delete(id);
      this.scheduler.abort(id);
      state.queue.fail(error);
    }
  }
}
