// Continuous batching on the CPU side (nano-vllm's scheduler.py, vLLM v1's token budget): every
// step fills a token budget with one decode token of each running sequence first, then the
// chunks of running sequences still reading their prompt, then prefill chunks of waiting and
// preempted sequences in policy order. A sequence starting (or restarting) first takes the
// longest cached prefix of its tokens, so only the rest counts against the budget and the pool;
// a later choice of an n > 1 prompt shares the first choice's prompt pages instead. When pages
// run out, the policy's victim is preempted: its references are dropped (pages the cache indexed
// stay cached) and its tokens (prompt and generated so far) are recomputed later, from the
// cache where it still holds them. Copy-on-write copies go into the step's kvOps.
import { validateBatch, type Batch } from '../model/batch.js';
import type { PageCopy } from '../model/index.js';
import type { KvManager } from '../kv/kv-manager.js';
import type { PageHash } from '../kv/page-hash.js';
import type { Sequence } from './sequence.js';
import { SessionRegistry } from './session-registry.js';
import { StepCostModel, type StepCost } from './step-cost.js';

export interface SchedulingPolicy {
  /** Waiting and preempted sequences, highest priority first (a new array). */
  order(waiting: Sequence[]): Sequence[];
  /** The running sequence to preempt when pages run out (one of `running`). */
  pickVictim(running: Sequence[]): Sequence;
  /**
   * Whether a waiting sequence may start now (default: yes). Asked only while some sequence runs,
   * so a refusal never leaves the engine idle. `cost`: the device's step cost as learnt so far (null: not yet).
   */
  admits?(seq: Sequence, cost: StepCost | null): boolean;
  /** At the start of every schedule(), with the scheduler's clock. */
  tick?(now: number): void;
  /** A sequence was queued (Scheduler.add). */
  added?(seq: Sequence): void;
  /** A waiting sequence took its cached or shared pages and starts computing. */
  started?(seq: Sequence): void;
  /** A running sequence lost its pages (it waits to be recomputed). */
  preempted?(seq: Sequence): void;
  /** A committed step computed `tokens` tokens of the sequence (prompt chunk or decode). */
  computed?(seq: Sequence, tokens: number): void;
  /** A sequence finished (any reason); its pages are still held and are freed right after. */
  finishing?(seq: Sequence): void;
}

/** First come, first served: oldest arrival first; the newest running sequence is preempted. */
export const fcfs: SchedulingPolicy = {
  order: (waiting) => [...waiting].sort((a, b) => a.arrival - b.arrival),
  pickVictim: (running) => running.reduce((newest, s) => (s.arrival > newest.arrival ? s : newest)),
};

export interface SchedulerOptions {
  kv: KvManager;
  /** Most tokens a sequence may hold (prompt + generated). */
  contextLength: number;
  /** Most tokens in one step (default 512). */
  maxBatchTokens?: number;
  /** Most sequences running at once (default 64). */
  maxRunningSeqs?: number;
  policy?: SchedulingPolicy;
  /** Milliseconds for queue times and policies with deadlines (default performance.now). */
  clock?: () => number;
  /** Run validateBatch on every built Batch (default true; cheap next to a GPU step). */
  validate?: boolean;
  /**
   * Latency-aware packing (default true): with a step cost learnt from observed steps
   * (Scheduler.stepCost), a waiting prompt joins a step that already completes another prompt only
   * if the delay its tokens add to those prompts' first tokens is at most what waiting one step
   * would cost it. False: prompts fill the token budget in policy order.
   */
  latencyPacking?: boolean;
  /**
   * Called whenever a sequence finishes, whatever the cause: commit (stop, length), abort, or
   * schedule() when the KV pool can never hold the sequence's next token (then schedule() may
   * return null, so this is the one place every finish is seen).
   */
  onFinished?: (seq: Sequence) => void;
  /** Most distinct KV pages sessions keep referenced between requests (default: half the pool). */
  maxSessionPages?: number;
  /** Most sessions open at once (default 256). */
  maxSessions?: number;
  /** A session with no request for this long (ms, by `clock`) is unpinned (default 5 minutes). */
  sessionUnpinAfterMs?: number;
  /** A session with no request for this long (ms, by `clock`) is destroyed (default Infinity: never). */
  sessionExpireAfterMs?: number;
}

export interface ScheduledSeq {
  seq: Sequence;
  /** Tokens of this sequence in the step (positions numComputed .. numComputed + numTokens - 1). */
  numTokens: number;
  /** Whether the chunk reaches the sequence's last known token, so a token is sampled for it. */
  samples: boolean;
}

export interface ScheduledStep {
  /** In Batch order; sampleRows follow the entries with samples = true. */
  seqs: ScheduledSeq[];
  batch: Batch;
  /** Page copies (copy-on-write) the GPU must make before it runs the batch. */
  kvOps: PageCopy[];
  /** Sequences preempted while building this step. */
  preempted: Sequence[];
  /** Sequences finished ('length') while building this step: the KV pool can never hold their next token. */
  finished: Sequence[];
}

export interface CommitResult {
  /** Tokens appended to sequences (a stop token is not appended). */
  appended: { seq: Sequence; tokenId: number }[];
  /** Sequences that finished in this commit (their pages are freed). */
  finished: Sequence[];
}

export class Scheduler {
  readonly kv: KvManager;
  readonly contextLength: number;
  readonly maxBatchTokens: number;
  readonly maxRunningSeqs: number;
  readonly policy: SchedulingPolicy;
  readonly clock: () => number;
  /** What a step costs on this device; the engine observes every step it runs (null: packing off). */
  readonly stepCost: StepCostModel | null;
  private readonly validate: boolean;
  private readonly onFinished: ((seq: Sequence) => void) | undefined;
  /** Contexts kept between requests (sessions), with their pages referenced. */
  readonly sessions: SessionRegistry;
  /** Waiting and preempted sequences (unordered; the policy orders them every step). */
  private readonly waitingSeqs: Sequence[] = [];
  /** Running sequences: they hold pages. */
  private readonly runningSeqs: Sequence[] = [];
  private readonly byId = new Map<number, Sequence>();
  private nextArrival = 0;
  private inFlight: ScheduledStep | null = null;

  constructor(options: SchedulerOptions) {
    this.kv = options.kv;
    this.contextLength = options.contextLength;
    this.maxBatchTokens = options.maxBatchTokens ?? 512;
    this.maxRunningSeqs = options.maxRunningSeqs ?? 64;
    this.policy = options.policy ?? fcfs;
    this.clock = options.clock ?? (() => performance.now());
    this.validate = options.validate ?? true;
    this.stepCost = options.latencyPacking === false ? null : new StepCostModel();
    this.onFinished = options.onFinished;
    this.sessions = new SessionRegistry(this.kv, {
      maxPages: options.maxSessionPages ?? Math.floor(this.kv.totalPages / 2), maxSessions: options.maxSessions,
      unpinAfterMs: options.sessionUnpinAfterMs, expireAfterMs: options.sessionExpireAfterMs, now: this.clock,
    });
    for (const [name, v] of [['contextLength', this.contextLength], ['maxBatchTokens', this.maxBatchTokens], ['maxRunningSeqs', this.maxRunningSeqs]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new Error(`scheduler: ${name} must be a positive integer, got ${v}`);
    }
  }

  get waiting(): readonly Sequence[] {
    return this.waitingSeqs;
  }

  get running(): readonly Sequence[] {
    return this.runningSeqs;
  }

  /** Whether any sequence is waiting or running. */
  get hasWork(): boolean {
    return this.byId.size > 0;
  }

  get(id: number): Sequence | undefined {
    return this.byId.get(id);
  }

  /** Queues a new sequence; throws if it can never run. */
  add(seq: Sequence): void {
    const where = `sequence ${seq.id}`;
    if (this.byId.has(seq.id)) throw new Error(`${where}: id already scheduled`);
    if (seq.status !== 'waiting' || seq.numComputed !== 0 || seq.blockTable.length || seq.generated.length) {
      throw new Error(`${where}: only a new sequence can be added`);
    }
    const n = seq.numPromptTokens;
    if (n === 0) throw new Error(`${where}: prompt has no tokens`);
    if (n >= this.contextLength) {
      throw new Error(`${where}: prompt of ${n} tokens does not fit the context of ${this.contextLength} tokens (at most ${this.contextLength - 1}, to leave room for one generated token)`);
    }
    if (!Number.isInteger(seq.maxTokens) || seq.maxTokens < 1) throw new Error(`${where}: maxTokens must be a positive integer, got ${seq.maxTokens}`);
    const pages = this.kv.pagesFor(n + 1);
    if (pages > this.kv.totalPages) {
      throw new Error(`${where}: prompt of ${n} tokens needs ${pages} KV pages; the pool has ${this.kv.totalPages} pages of ${this.kv.pageSize} tokens`);
    }
    seq.arrival = this.nextArrival++;
    seq.queuedAt = this.clock();
    this.byId.set(seq.id, seq);
    this.waitingSeqs.push(seq);
    if (seq.session) this.sessions.requestQueued(seq.session);
    this.policy.added?.(seq);
  }

  /** Stops a sequence and frees its pages; false if it is unknown or already finished. */
  abort(id: number): boolean {
    const seq = this.byId.get(id);
    if (!seq) return false;
    this.finish(seq, 'abort');
    return true;
  }

  /**
   * Drops the step in flight (its results never come) and preempts every running sequence: their
   * references go and their tokens (prompt and generated so far) are recomputed when they run
   * again. Used when the GPU device is lost and the KV cache with it.
   */
  preemptAll(): Sequence[] {
    this.inFlight = null;
    const preempted = [...this.runningSeqs];
    for (const seq of preempted) this.preempt(seq);
    return preempted;
  }

  /** Builds the next step, or null when there is nothing to run. Commit each step before the next. */
  schedule(): ScheduledStep | null {
    if (this.inFlight) throw new Error('scheduler: commit the previous step before scheduling the next');
    this.policy.tick?.(this.clock());
    this.sessions.sweep();
    let budget = this.maxBatchTokens;
    const chosen: ScheduledSeq[] = [];
    const scheduled = new Set<Sequence>();
    const preempted: Sequence[] = [];
    const finished: Sequence[] = [];
    const kvOps: PageCopy[] = [];
    let decodeRows = 0;
    let promptsCompleted = 0;

    const take = (seq: Sequence, n: number, decode: boolean) => {
      kvOps.push(...this.kv.allocate(seq.kv, n));
      const samples = seq.numComputed + n === seq.numTokens;
      chosen.push({ seq, numTokens: n, samples });
      scheduled.add(seq);
      budget -= n;
      if (decode) decodeRows++;
      else if (samples) promptsCompleted++;
    };

    // Running sequences in priority order: decode tokens first, then continuing prefill chunks.
    const running = this.policy.order(this.runningSeqs);
    for (const phase of ['decode', 'prefill'] as const) {
      for (const seq of running) {
        if (budget === 0) break;
        if (seq.status !== 'running' || scheduled.has(seq)) continue;
        if ((seq.numPending === 1) !== (phase === 'decode')) continue;
        const n = Math.min(seq.numPending, budget);
        if (!this.makeRoom(seq, n, scheduled, preempted, finished)) continue;
        take(seq, n, phase === 'decode');
      }
    }

    // Waiting and preempted sequences, unless this step had to preempt (no thrashing). One whose
    // next page a running sequence is computing waits for it to be cached (SGLang does the same).
    if (!preempted.length) {
      const computing = new Set<PageHash>(this.runningSeqs.flatMap((s) => this.kv.pendingPageHashes(s.kv)));
      const cost = this.stepCost?.estimate() ?? null;
      const ordered = this.policy.order(this.waitingSeqs);
      for (const [i, seq] of ordered.entries()) {
        const allowed = Math.min(budget, this.promptTokensAllowed(cost, promptsCompleted, decodeRows, ordered.length - 1 - i));
        if (allowed === 0 || this.runningSeqs.length >= this.maxRunningSeqs) break;
        if (seq.restoring) continue;
        if (this.policy.admits && this.runningSeqs.length && !this.policy.admits(seq, cost)) continue;
        if (this.kv.pagesFor(seq.numTokens) > this.kv.totalPages) {
          // Preempted with more tokens than the whole pool holds: it can never be recomputed.
          this.finish(seq, 'length');
          finished.push(seq);
          continue;
        }
        let n = this.start(seq, allowed, computing);
        // Idle sessions give their pages back before a waiting request is turned away.
        while (n === 'full' && this.sessions.unpinLeastRecent()) n = this.start(seq, allowed, computing);
        if (n === 'wait') continue;
        if (n === 'full') break;
        this.waitingSeqs.splice(this.waitingSeqs.indexOf(seq), 1);
        this.runningSeqs.push(seq);
        seq.status = 'running';
        this.policy.started?.(seq);
        take(seq, n, false);
        // A chunk the packing rule cut short: the step has all the prompt tokens it should carry.
        if (n === allowed && allowed < budget + n && seq.numComputed + n < seq.numTokens) break;
        for (const h of this.kv.pendingPageHashes(seq.kv)) computing.add(h);
      }
    }

    if (!chosen.length) return null;
    const step: ScheduledStep = { seqs: chosen, batch: this.buildBatch(chosen), kvOps, preempted, finished };
    if (this.validate) validateBatch(step.batch, this.kv.pageSize);
    this.inFlight = step;
    return step;
  }

  /**
   * Records a step's results: `sampledIds` has one token per entry of step.seqs with samples = true,
   * in order. Appends tokens, finishes sequences on a stop id, maxTokens or the context limit, and
   * frees the pages of finished ones. Sequences aborted meanwhile are skipped.
   */
  commit(step: ScheduledStep, sampledIds: ArrayLike<number>): CommitResult {
    if (step !== this.inFlight) throw new Error('scheduler: commit a step returned by the last schedule()');
    const expected = step.seqs.filter((s) => s.samples).length;
    if (sampledIds.length !== expected) throw new Error(`scheduler: ${sampledIds.length} sampled ids for ${expected} sampling sequences`);
    this.inFlight = null;
    const result: CommitResult = { appended: [], finished: [] };
    let k = 0;
    for (const { seq, numTokens, samples } of step.seqs) {
      const id = samples ? sampledIds[k++] : -1;
      if (seq.status !== 'running') continue; // aborted while the step ran
      seq.numComputed += numTokens;
      this.kv.indexComputed(seq.kv);
      this.policy.computed?.(seq, numTokens);
      if (!samples) continue;
      if (seq.stopIds.includes(id)) {
        this.finish(seq, 'stop');
        result.finished.push(seq);
        continue;
      }
      seq.append(id);
      result.appended.push({ seq, tokenId: id });
      if (seq.generated.length >= seq.maxTokens || seq.numTokens >= this.contextLength) {
        this.finish(seq, 'length');
        result.finished.push(seq);
      }
    }
    return result;
  }

  /** Pool invariants over every sequence that holds pages, and queue consistency. */
  checkInvariants(): void {
    for (const s of this.runningSeqs) if (s.status !== 'running') throw new Error(`running sequence ${s.id} has status ${s.status}`);
    for (const s of this.waitingSeqs) {
      if (s.status !== 'waiting' && s.status !== 'preempted') throw new Error(`waiting sequence ${s.id} has status ${s.status}`);
      if (s.blockTable.length || s.numComputed) throw new Error(`waiting sequence ${s.id} holds pages or computed tokens`);
    }
    if (this.runningSeqs.length + this.waitingSeqs.length !== this.byId.size) throw new Error('scheduler: queues and id map disagree');
    if (this.runningSeqs.length > this.maxRunningSeqs) throw new Error(`scheduler: ${this.runningSeqs.length} running > maxRunningSeqs ${this.maxRunningSeqs}`);
    this.kv.checkInvariants([...this.runningSeqs.map((s) => s.kv), ...this.sessions.contexts()], true);
  }

  /**
   * Latency-aware packing: how many tokens of a waiting prompt the step may still take. Each token
   * added to a step that completes k prompts already delays their first tokens by perTokenMs. A
   * prompt left for the next step waits for that step's fixed cost and decode rows, and if that
   * step would not otherwise run, its fixed cost also delays the `behind` prompts queued after it.
   * So it may add n tokens while k × perTokenMs × n ≤ fixedMs × (1 + behind) + perTokenMs ×
   * decodeRows (unlimited when k = 0 or no cost is known yet). Prompts batch on a GPU (fixed cost
   * dominant) and under a long queue; on a CPU adapter with few waiting they go one per step.
   */
  private promptTokensAllowed(cost: StepCost | null, promptsCompleted: number, decodeRows: number, behind: number): number {
    if (!cost || promptsCompleted === 0 || cost.perTokenMs === 0) return Infinity;
    return Math.floor((cost.fixedMs * (1 + behind) + cost.perTokenMs * decodeRows) / (promptsCompleted * cost.perTokenMs));
  }

  /**
   * Gives a waiting sequence the pages it can have without computing (its leader's prompt, or its
   * cached prefix) and returns how many tokens it computes in this step: 'wait' while its leader
   * has not computed the prompt yet or its next page is among the pages `computing`, 'full'
   * (holding nothing) when the pool cannot take it.
   */
  private start(seq: Sequence, budget: number, computing: ReadonlySet<PageHash>): number | 'wait' | 'full' {
    const leader = seq.leader;
    if (leader) {
      const shared = seq.numPromptTokens - 1;
      if (leader.status === 'waiting' || (leader.status === 'running' && leader.numComputed < shared)) return 'wait';
      seq.leader = null;
      if (leader.status === 'running' && seq.numComputed === 0 && shared > 0) {
        this.kv.share(leader.kv, seq.kv, shared);
        if (!this.kv.canAllocate(seq.kv, 1)) {
          this.kv.free(seq.kv);
          seq.numComputed = 0;
          seq.leader = leader;
          return 'full';
        }
        seq.cachedTokens ??= shared;
        return 1;
      }
    }
    const match = this.kv.lookupPrefix(seq.kv);
    const session = seq.session?.pinned ? seq.session : null;
    const fromSession = session ? this.sessions.commonPrefix(session, seq) : 0;
    if (session && fromSession > match.pages.length * this.kv.pageSize) {
      this.sessions.startFrom(session, seq, fromSession);
      const n = Math.min(seq.numTokens - fromSession, budget);
      if (!this.kv.canAllocate(seq.kv, n)) {
        this.kv.free(seq.kv);
        seq.numComputed = 0;
        seq.sessionTokens = 0;
        return 'full';
      }
      seq.cachedTokens ??= fromSession;
      return n;
    }
    const next = this.kv.nextPageHash(seq.kv, match);
    if (next !== null && computing.has(next)) return 'wait';
    const n = Math.min(seq.numTokens - match.pages.length * this.kv.pageSize, budget);
    if (!this.kv.canTakePrefix(match, n)) return 'full';
    seq.cachedTokens ??= this.kv.takePrefix(seq.kv, match);
    return n;
  }

  /**
   * Preempts policy victims (among `seq` and running sequences not yet in this step) until `seq`
   * can take `n` more tokens. False if `seq` itself was preempted or finished.
   */
  private makeRoom(seq: Sequence, n: number, scheduled: Set<Sequence>, preempted: Sequence[], finished: Sequence[]): boolean {
    while (!this.kv.canAllocate(seq, n)) {
      if (this.sessions.unpinLeastRecent()) continue;
      const candidates = this.runningSeqs.filter((s) => s === seq || !scheduled.has(s));
      if (this.runningSeqs.length === 1) {
        // Alone and still short of pages: the pool can never hold this sequence's next token.
        this.finish(seq, 'length');
        finished.push(seq);
        return false;
      }
      const victim = this.policy.pickVictim(candidates);
      if (!candidates.includes(victim)) throw new Error('scheduling policy picked a victim that cannot be preempted');
      this.preempt(victim);
      preempted.push(victim);
      if (victim === seq) return false;
    }
    return true;
  }

  private preempt(seq: Sequence): void {
    this.kv.free(seq.kv);
    seq.numComputed = 0;
    seq.status = 'preempted';
    seq.preemptions++;
    this.policy.preempted?.(seq);
    this.runningSeqs.splice(this.runningSeqs.indexOf(seq), 1);
    this.waitingSeqs.push(seq);
  }

  private finish(seq: Sequence, reason: 'stop' | 'length' | 'abort'): void {
    if (seq.status === 'running') this.runningSeqs.splice(this.runningSeqs.indexOf(seq), 1);
    else this.waitingSeqs.splice(this.waitingSeqs.indexOf(seq), 1);
    seq.status = 'finished';
    seq.finishReason = reason;
    this.policy.finishing?.(seq);
    this.sessions.adopt(seq);
    this.kv.free(seq.kv);
    this.byId.delete(seq.id);
    this.onFinished?.(seq);
  }

  private buildBatch(chosen: ScheduledSeq[]): Batch {
    const n = chosen.length;
    const total = chosen.reduce((sum, c) => sum + c.numTokens, 0);
    const maxBlocksPerSeq = Math.max(1, ...chosen.map((c) => c.seq.blockTable.length));
    const batch: Batch = {
      tokenIds: new Int32Array(total),
      positions: new Int32Array(total),
      seqStarts: new Int32Array(n + 1),
      contextLens: new Int32Array(n),
      blockTables: new Int32Array(n * maxBlocksPerSeq).fill(-1),
      maxBlocksPerSeq,
      slotMapping: new Int32Array(total),
      sampleRows: new Int32Array(chosen.filter((c) => c.samples).length),
    };
    let t = 0;
    let r = 0;
    chosen.forEach(({ seq, numTokens, samples }, i) => {
      batch.seqStarts[i] = t;
      for (let j = 0; j < numTokens; j++, t++) {
        const pos = seq.numComputed + j;
        batch.tokenIds[t] = seq.tokens[pos];
        batch.positions[t] = pos;
        batch.slotMapping[t] = this.kv.slotFor(seq.kv, pos);
      }
      batch.contextLens[i] = seq.numComputed + numTokens;
      batch.blockTables.set(seq.blockTable, i * maxBlocksPerSeq);
      if (samples) batch.sampleRows[r++] = t - 1;
    });
    batch.seqStarts[n] = t;
    return batch;
  }
}
