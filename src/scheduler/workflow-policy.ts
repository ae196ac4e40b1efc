// The `workflow` scheduling policy (Autellix's program-level least attained service, Continuum's
// KV time-to-live across tool calls, KVFlow's evict-what-runs-latest). A request belongs to a
// workflow (metadata.workflow_id; none: its own one-call workflow).
// - Order: priority (lower first), then the service attained by its whole workflow (tokens
//   computed for all its calls so far, in levels that double: Autellix's multi-level queues), then
//   whose prefix is cached (more cached pages first), then arrival; a request waiting longer than
//   the starvation bound (adaptive by default: StarvationBound) goes before all of these.
// - Admission: a workflow with nothing running or kept starts only when all its queued calls fit
//   (shared prompt counted once) beside the live workflows' agent contexts (the latest context of
//   each agent with a call queued or running or expected back within its retention TTL, resident
//   or not, as long as it is expected to grow by its last call:
//   FootprintForecast; one with only kept pages while its last activity is within the starvation
//   bound), so a new workflow waits rather than evict them, now or as they grow. Where
//   recomputing a page costs more than a few steps (holdForKeptPages, judged from the step cost),
//   a call of a live workflow likewise waits for free pages rather than evict its siblings' pins.
// - Victim of a preemption: a running request of the workflow with the most service.
// - KV across calls: when a call finishes while its workflow is open, its pages are pinned
//   (KvRetention) for a time-to-live under its (workflow, agent) (adaptive by default:
//   RetentionTtl, from the measured gaps between a call's finish and its agent's next call); the
//   agent's next call arriving holds them until it starts, however long it queues, and its start
//   releases them (what it did not take, the superseded tail, goes back to plain LRU). TTL
//   expiry, end() and an idle timeout release them (the default idle timeout never ends a
//   workflow before its pins lapse). Pinned pages go after plain cached ones, and among them the
//   pins of the most served workflow first, then of the agent expected back from its tool last
//   (its last finish plus its workflow's mean gap between calls), each context from its tail.
import type { KvManager } from '../kv/kv-manager.js';
import { KvRetention } from '../kv/retention.js';
import type { SchedulingPolicy } from './scheduler.js';
import type { StepCost } from './step-cost.js';
import type { Sequence } from './sequence.js';
import { StarvationBound, type AdaptiveStarvationOptions } from './starvation-bound.js';
import { RetentionTtl, type AdaptiveTtlOptions, type GapWindow, type TtlSource } from './retention-ttl.js';
import { FootprintForecast, type FootprintForecastOptions } from './footprint-forecast.js';

export interface WorkflowPolicyOptions {
  kv: KvManager;
  /** Milliseconds; the scheduler's clock (pass the same one). */
  clock?: () => number;
  /**
   * A request waiting longer than this (ms) runs next whatever its workflow's service. Default
   * 'adaptive': 8 times the mean queue time of the last 64 calls started and of the calls still
   * queued, at least 10 s, at most 10 minutes (StarvationBound); a number is a fixed bound.
   */
  starvationMs?: number | 'adaptive';
  /** Tuning of the adaptive starvation bound (factor, floorMs, capMs, window). */
  adaptiveStarvation?: AdaptiveStarvationOptions;
  /**
   * How long a finished call's pages stay pinned for the agent's next call. Default 'adaptive':
   * 1.5 times the 90th percentile of the last 64 measured gaps from a call's finish to its agent's
   * next call (the workflow's own once it has 8, else all workflows'), within 1 s .. 10 minutes,
   * 10 s before 8 gaps are known (RetentionTtl); a number is a fixed TTL (ms; 0: nothing kept).
   */
  retentionTtlMs?: number | 'adaptive';
  /** Tuning of the adaptive TTL (percentile, margin, floorMs, capMs, window, minGaps, fallbackMs). */
  adaptiveRetention?: AdaptiveTtlOptions;
  /**
   * A workflow with no call queued or running for this long is ended (ms). Default 60 000, and
   * never before the pins of its last finished call lapse (so an adaptive TTL above a minute
   * holds); a number given here is kept as given, even below the TTL.
   */
  idleTimeoutMs?: number;
  /** Hold calls of new workflows while the pool cannot hold them beside the live ones (default true). */
  admission?: boolean;
  /**
   * Hold a call of a live workflow while starting it would evict pages kept for other agents'
   * next calls (it waits for free or plain cached pages; never past the starvation bound).
   * 'auto' (default): only on a device where recomputing a page costs more than
   * KEPT_PAGE_HOLD_RATIO steps' fixed cost (a CPU adapter: prompt tokens are the time); on a GPU a
   * step's fixed cost dominates and the call joins the batch.
   */
  holdForKeptPages?: boolean | 'auto';
  /**
   * Service levels (Autellix's multi-level queues): workflows rank by level, level k holding
   * service from quantum * (2^k - 1) up to quantum * (2^(k+1) - 1) tokens; within a level, cached
   * prefix and arrival decide (default 256 tokens; 1: every token counts, plain least attained service).
   */
  serviceQuantumTokens?: number;
  /**
   * Admission counts the live workflows' agent contexts as long as they are expected to grow by
   * their agents' last calls (default true; FootprintForecast); false: as long as they are now.
   */
  forecastGrowth?: boolean;
  /** Tuning of the growth forecast (window, agentWindow, minAgents). */
  footprintForecast?: FootprintForecastOptions;
  /** Most tokens a sequence holds (the model's context): no agent's context is forecast to grow past it (default: unbounded). */
  contextLength?: number;
}

/** holdForKeptPages 'auto': hold when pageSize × perTokenMs ≥ this × fixedMs (bench/agents-sim.ts: 8 ms/token against 20 ms a step holds). */
export const KEPT_PAGE_HOLD_RATIO = 4;

export const WORKFLOW_DEFAULTS = { starvationMs: 'adaptive', retentionTtlMs: 'adaptive', idleTimeoutMs: 60_000, serviceQuantumTokens: 256 } as const;

/** How many workflows ended by the idle timeout keep their measured gaps, for when they come back. */
export const DORMANT_WORKFLOWS = 256;

interface Dormant {
  gaps: GapWindow;
  /** Per (workflow, agent) retention key, when its last call finished. */
  finishedAt: Map<string, number>;
}

/** One agent of a workflow, as admission counts it. */
export interface AgentState {
  /** Its latest context (the tokens of its last call queued or finished; they grow as it decodes). */
  context: readonly number[];
  calls: number;
  /** Prompt length and maxTokens of its latest call. */
  promptTokens: number;
  maxTokens: number;
  /** Its calls queued or running. */
  busy: number;
  /** Until when it is expected back from its tool (its last finish plus the retention TTL then; 0 before a finish). */
  expectedUntil: number;
}

/** What the policy knows of one workflow. */
export class WorkflowState {
  /** Tokens computed for its calls so far (prompt chunks, recomputation and decode tokens). */
  service = 0;
  /** Calls queued or running. */
  active = 0;
  /** Ids of its calls running (holding pages). */
  readonly running = new Set<number>();
  /** Its calls queued (new or preempted). */
  readonly waiting = new Set<Sequence>();
  /** Per agent, what admission counts of it (AgentState). */
  readonly agents = new Map<string, AgentState>();
  calls = 0;
  /** Mean time (ms) from a call's finish to its agent's next call, over the gaps seen so far (null: none yet). */
  meanGapMs: number | null = null;
  gapsSeen = 0;
  /** When the pins of its latest finished call lapse (0: none granted). */
  keptUntil = 0;
  constructor(readonly key: string, readonly named: boolean, public lastActivity: number, readonly gaps: GapWindow) {}
}

export class WorkflowPolicy implements SchedulingPolicy {
  readonly retention: KvRetention;
  /** The starvation bound (fixed or following the measured queue times). */
  readonly starvation: StarvationBound;
  /** The retention TTL (fixed or following the measured gaps between calls). */
  readonly ttl: RetentionTtl;
  readonly idleTimeoutMs: number;
  /** Whether the idle timeout is the default (then it waits for a workflow's pins to lapse). */
  private readonly idleTimeoutGiven: boolean;
  readonly serviceQuantumTokens: number;
  readonly admission: boolean;
  /** What the live workflows' contexts are expected still to grow by (null: admission counts them as they are). */
  readonly forecast: FootprintForecast | null;
  readonly contextLength: number;
  readonly holdForKeptPages: boolean | 'auto';
  private readonly kv: KvManager;
  private readonly clock: () => number;
  private readonly workflows = new Map<string, WorkflowState>();
  /** When each (workflow, agent)'s last call finished, while its workflow is open. */
  private readonly finishedAt = new Map<string, number>();
  /**
   * Workflows ended by the idle timeout lately (the most recent DORMANT_WORKFLOWS): when one comes
   * back, the gap from its agent's last finish is still measured, so the TTL can learn gaps longer
   * than the idle timeout, and its own gaps carry on.
   */
  private readonly dormant = new Map<string, Dormant>();
  /**
   * Footprints of workflows (pages) computed since the policy's state last changed: admission asks
   * for the same ones for every waiting call of a step, and each walks its agents' contexts.
   */
  private readonly footprints = new Map<WorkflowState, number>();
  /** Calls that have started at least once (a restart after preemption is not a queue time). */
  private readonly startedOnce = new WeakSet<Sequence>();
  /** Calls that started past the starvation bound (whatever their rank). */
  starvedStarts = 0;
  /** Called when a named workflow ends (end(), idle timeout), with the key it had. */
  onEnded: ((workflowId: string) => void) | null = null;

  constructor(options: WorkflowPolicyOptions) {
    this.kv = options.kv;
    this.clock = options.clock ?? (() => performance.now());
    const starvationMs = options.starvationMs ?? WORKFLOW_DEFAULTS.starvationMs;
    if (starvationMs !== 'adaptive' && typeof starvationMs !== 'number') throw new Error(`workflow policy: starvationMs must be a number of milliseconds or 'adaptive', got ${JSON.stringify(starvationMs)}`);
    this.starvation = new StarvationBound(starvationMs === 'adaptive' ? null : starvationMs, options.adaptiveStarvation);
    const retentionTtlMs = options.retentionTtlMs ?? WORKFLOW_DEFAULTS.retentionTtlMs;
    if (retentionTtlMs !== 'adaptive' && typeof retentionTtlMs !== 'number') throw new Error(`workflow policy: retentionTtlMs must be a number of milliseconds or 'adaptive', got ${JSON.stringify(retentionTtlMs)}`);
    this.ttl = new RetentionTtl(retentionTtlMs === 'adaptive' ? null : retentionTtlMs, options.adaptiveRetention);
    this.idleTimeoutGiven = options.idleTimeoutMs !== undefined;
    this.idleTimeoutMs = options.idleTimeoutMs ?? WORKFLOW_DEFAULTS.idleTimeoutMs;
    this.serviceQuantumTokens = options.serviceQuantumTokens ?? WORKFLOW_DEFAULTS.serviceQuantumTokens;
    this.admission = options.admission ?? true;
    this.holdForKeptPages = options.holdForKeptPages ?? 'auto';
    this.forecast = options.forecastGrowth === false ? null : new FootprintForecast(options.footprintForecast);
    this.contextLength = options.contextLength ?? Infinity;
    if (!(this.serviceQuantumTokens >= 1)) throw new Error(`workflow policy: serviceQuantumTokens must be >= 1, got ${this.serviceQuantumTokens}`);
    if (!(this.idleTimeoutMs >= 0)) throw new Error(`workflow policy: idleTimeoutMs must be a number of milliseconds >= 0, got ${this.idleTimeoutMs}`);
    this.retention = new KvRetention(options.kv.pool, (key) => this.nextUseRank(key));
  }

  /** The workflow's state, or undefined when it is not open. */
  workflow(workflowId: string): WorkflowState | undefined {
    return this.workflows.get(named(workflowId));
  }

  /** Pages pinned for the workflow's agents now. */
  retainedPages(workflowId: string, agentId?: string | null): number {
    const prefix = named(workflowId) + '\u0000';
    return this.retention.keys.filter((k) => (agentId === undefined ? k.startsWith(prefix) : k === retentionKey(named(workflowId), agentId)))
      .reduce((sum, k) => sum + this.retention.pagesOf(k), 0);
  }

  order(waiting: Sequence[]): Sequence[] {
    const now = this.clock();
    const cached = new Map<Sequence, number>();
    const cachedPages = (s: Sequence) => {
      let n = cached.get(s);
      if (n === undefined) cached.set(s, (n = this.cachedPrefixPages(s)));
      return n;
    };
    const bound = this.starvationBoundMs();
    const starved = (s: Sequence) => now - s.queuedAt > bound;
    return [...waiting].sort((a, b) => {
      const sa = starved(a);
      if (sa !== starved(b)) return sa ? -1 : 1;
      if (sa) return a.arrival - b.arrival;
      return a.priority - b.priority || this.levelOf(a) - this.levelOf(b) || cachedPages(b) - cachedPages(a) || a.arrival - b.arrival;
    });
  }

  /**
   * A call of a workflow with nothing running or kept starts only when its context fits beside
   * the pages running calls hold and the pages kept for other workflows' next calls: a new
   * workflow waits rather than evict the contexts of those already under way. Starved calls,
   * calls of live workflows and, with admission off, every call start.
   */
  admits(seq: Sequence, cost: StepCost | null = null): boolean {
    if (!this.admission) return true;
    const bound = this.starvationBoundMs();
    if (this.clock() - seq.queuedAt > bound) return true;
    const w = this.workflows.get(keyOf(seq));
    if (w && this.isLive(w)) return !this.holdsForKeptPages(cost) || this.fitsBesideKeptPages(seq);
    const live = [...this.workflows.values()].filter((o) => o !== w && this.reservesRoom(o, bound));
    const held = live.reduce((n, o) => n + this.footprint(o), 0);
    const starting = w ? [...w.waiting] : [seq];
    const growth = w ? starting.reduce((n, c) => n + this.growthPages(w, w.agents.get(agentOf(c))), 0) : 0;
    return held + this.pagesToStart(starting.map((c) => c.tokens)) + growth <= this.kv.pool.totalPages;
  }

  /** Whether calls of live workflows wait rather than evict kept pages, on this device. */
  private holdsForKeptPages(cost: StepCost | null): boolean {
    if (this.holdForKeptPages !== 'auto') return this.holdForKeptPages;
    return cost !== null && this.kv.pageSize * cost.perTokenMs >= KEPT_PAGE_HOLD_RATIO * cost.fixedMs;
  }

  /** Whether the pages the call must compute fit in free and plain cached pages (no kept page evicted). */
  private fitsBesideKeptPages(seq: Sequence): boolean {
    const need = this.kv.pagesFor(seq.numTokens + 1) - this.cachedPrefixPages(seq);
    const pool = this.kv.pool;
    return need <= pool.freePages + pool.cachedPages - pool.retainedPages;
  }

  pickVictim(running: Sequence[]): Sequence {
    // The most served workflow loses; within it (or a tie) the newest call, as fcfs does.
    return running.reduce((v, s) => {
      const d = this.serviceOf(s) - this.serviceOf(v) || s.priority - v.priority || s.arrival - v.arrival;
      return d > 0 ? s : v;
    });
  }

  tick(now: number): void {
    this.footprints.clear();
    this.retention.expire(now);
    for (const w of [...this.workflows.values()]) {
      if (w.active === 0 && now - w.lastActivity >= this.idleTimeoutMs && (this.idleTimeoutGiven || now >= w.keptUntil)) this.close(w, 'idle');
    }
  }

  added(seq: Sequence): void {
    this.footprints.clear();
    const key = keyOf(seq);
    let w = this.workflows.get(key);
    if (!w) this.workflows.set(key, (w = this.newWorkflow(key, seq.workflowId !== null)));
    w.active++;
    w.calls++;
    w.waiting.add(seq);
    this.countCall(w, seq);
    w.lastActivity = this.clock();
    // The agent is back from its tool: what is kept for it stays until this call starts, however long it queues.
    if (seq.workflowId !== null) this.retention.extend(retentionKey(key, seq.agentId), Infinity);
    const last = seq.workflowId === null ? undefined : this.finishedAt.get(retentionKey(key, seq.agentId));
    if (last !== undefined) {
      const gap = this.clock() - last;
      w.gapsSeen++;
      w.meanGapMs = (w.meanGapMs ?? 0) + (gap - (w.meanGapMs ?? 0)) / w.gapsSeen;
      this.ttl.observe(gap, w.gaps);
    }
  }

  started(seq: Sequence): void {
    this.footprints.clear();
    if (!this.startedOnce.has(seq)) {
      const waited = this.clock() - seq.queuedAt;
      if (waited > this.starvationBoundMs()) this.starvedStarts++;
      this.startedOnce.add(seq);
      this.starvation.observe(waited);
    }
    const w = this.workflows.get(keyOf(seq));
    w?.running.add(seq.id);
    w?.waiting.delete(seq);
    // The agent's next call has taken what it shares of its last context: the rest is superseded.
    if (seq.workflowId !== null) this.retention.release(retentionKey(keyOf(seq), seq.agentId));
  }

  preempted(seq: Sequence): void {
    this.footprints.clear();
    const w = this.workflows.get(keyOf(seq));
    w?.running.delete(seq.id);
    w?.waiting.add(seq);
  }

  computed(seq: Sequence, tokens: number): void {
    const w = this.workflows.get(keyOf(seq));
    if (w) w.service += tokens;
  }

  finishing(seq: Sequence): void {
    this.footprints.clear();
    const w = this.workflows.get(keyOf(seq));
    if (!w) return;
    w.running.delete(seq.id);
    w.waiting.delete(seq);
    w.active--;
    w.lastActivity = this.clock();
    if (!w.named) {
      this.workflows.delete(w.key);
      return;
    }
    // Any finish counts (the engine ends a call on a stop string by aborting it): its pages hold the agent's context.
    this.finishedAt.set(retentionKey(w.key, seq.agentId), this.clock());
    const ttlMs = this.ttl.currentMs(w.gaps);
    const agent = w.agents.get(agentOf(seq));
    if (agent) {
      agent.busy--;
      agent.expectedUntil = this.clock() + ttlMs;
    }
    if (ttlMs === 0) return;
    const pages = seq.blockTable.filter((p) => this.kv.pool.hashOf(p) !== null);
    if (!pages.length) return;
    w.keptUntil = Math.max(w.keptUntil, this.clock() + ttlMs);
    this.retention.retain(retentionKey(w.key, seq.agentId), pages, this.clock() + ttlMs);
  }

  /**
   * The TTL (ms) a call of the workflow finishing now gets (its own gaps, also while it is dormant
   * after an idle timeout; no id or an unknown workflow: the TTL from every workflow's gaps).
   */
  retentionTtlMs(workflowId?: string): number {
    return this.ttl.currentMs(this.gapsOf(workflowId));
  }

  retentionTtlSource(workflowId?: string): TtlSource {
    return this.ttl.source(this.gapsOf(workflowId));
  }

  private gapsOf(workflowId: string | undefined): GapWindow | undefined {
    if (workflowId === undefined) return undefined;
    const key = named(workflowId);
    return this.workflows.get(key)?.gaps ?? this.dormant.get(key)?.gaps;
  }

  /** A workflow's state, with the gaps and last finishes it had if it went idle lately. */
  private newWorkflow(key: string, isNamed: boolean): WorkflowState {
    const d = this.dormant.get(key);
    this.dormant.delete(key);
    for (const [k, at] of d?.finishedAt ?? []) this.finishedAt.set(k, at);
    return new WorkflowState(key, isNamed, this.clock(), d?.gaps ?? this.ttl.newWindow());
  }

  private rememberDormant(key: string, d: Dormant): void {
    this.dormant.set(key, d);
    for (const k of this.dormant.keys()) {
      if (this.dormant.size <= DORMANT_WORKFLOWS) break;
      this.dormant.delete(k);
    }
  }

  /** Ends a workflow: its pins go back to plain LRU and its service is forgotten. False if it was not open. */
  end(workflowId: string): boolean {
    const w = this.workflows.get(named(workflowId));
    if (!w) return false;
    this.dormant.delete(w.key);
    this.close(w, 'ended');
    return true;
  }

  /** Open workflows by id (named ones only). */
  openWorkflows(): string[] {
    return [...this.workflows.values()].filter((w) => w.named).map((w) => w.key.slice(2));
  }

  private close(w: WorkflowState, why: 'idle' | 'ended'): void {
    this.footprints.clear();
    if (w.named) for (const a of w.agents.values()) this.forecast?.observeAgentCalls(a.calls);
    const prefix = w.key + '\u0000';
    this.retention.releaseWhere((k) => k.startsWith(prefix));
    const finished = new Map<string, number>();
    for (const [k, at] of [...this.finishedAt]) {
      if (!k.startsWith(prefix)) continue;
      finished.set(k, at);
      this.finishedAt.delete(k);
    }
    if (why === 'idle' && w.named) this.rememberDormant(w.key, { gaps: w.gaps, finishedAt: finished });
    // Calls still queued keep their state; the workflow reopens with them, service anew.
    this.workflows.delete(w.key);
    if (w.active > 0) {
      const reopened = this.newWorkflow(w.key, w.named);
      reopened.active = w.active;
      for (const id of w.running) reopened.running.add(id);
      for (const q of w.waiting) reopened.waiting.add(q);
      this.workflows.set(w.key, reopened);
    }
    if (w.named) this.onEnded?.(w.key.slice(2));
  }

  /**
   * Pages the calls need to start together: the first call's context, then what each other call
   * does not share with it in whole pages (the agents of a workflow share its system prompt).
   */
  private pagesToStart(contexts: (readonly number[])[]): number {
    if (!contexts.length) return 0;
    const [first, ...rest] = contexts;
    let pages = this.kv.pagesFor(first.length);
    for (const c of rest) pages += this.kv.pagesFor(c.length) - Math.floor(commonPrefix(first, c) / this.kv.pageSize);
    return pages;
  }

  /** A workflow is live while a call of it runs or pages are kept for its agents. */
  private isLive(w: WorkflowState): boolean {
    return w.running.size > 0 || (w.named && this.retainedPages(w.key.slice(2)) > 0);
  }

  /**
   * Whether admission keeps room for a live workflow's agents: while a call of it runs, and while
   * pages are kept for it and its last activity is within the starvation bound. Admission holds a
   * call at most that bound, so it reserves room no longer for an agent that is not back (a long
   * TTL still keeps the pages, ahead of plain cached ones, without holding new workflows out).
   */
  private reservesRoom(w: WorkflowState, boundMs: number): boolean {
    if (w.running.size > 0) return true;
    return this.isLive(w) && this.clock() - w.lastActivity <= boundMs;
  }

  /**
   * Pages a live workflow's agents need resident: the latest contexts of those with a call queued
   * or running or expected back from their tool (within the retention TTL of their last finish),
   * the shared head once, and what each is expected still to grow by. An agent not back within its
   * TTL has most likely finished; it keeps no room (if it does come back, its call starts as any
   * call of a live workflow).
   */
  private footprint(w: WorkflowState): number {
    let pages = this.footprints.get(w);
    if (pages === undefined) this.footprints.set(w, (pages = this.computeFootprint(w)));
    return pages;
  }

  private computeFootprint(w: WorkflowState): number {
    const now = this.clock();
    const contexts: (readonly number[])[] = [];
    let growth = 0;
    for (const a of w.agents.values()) {
      if (a.busy === 0 && now >= a.expectedUntil) continue;
      contexts.push(a.context);
      growth += this.growthPages(w, a);
    }
    return this.pagesToStart(contexts) + growth;
  }

  /**
   * Pages an agent's context is expected to grow by before its last call, never past the context
   * length (0 without a forecast, and for a call without a workflow: it makes no other).
   */
  private growthPages(w: WorkflowState, a: AgentState | undefined): number {
    if (!this.forecast || !w.named || !a) return 0;
    const length = a.context.length;
    const grown = Math.min(length + this.forecast.growthPerCall(a.maxTokens) * this.forecast.remainingCalls(a.calls), Math.max(length, this.contextLength));
    return this.kv.pagesFor(Math.ceil(grown)) - this.kv.pagesFor(length);
  }

  /** Counts an agent's call and what it added to the agent's context (for the growth forecast). */
  private countCall(w: WorkflowState, seq: Sequence): void {
    const agent = agentOf(seq);
    const last = w.agents.get(agent);
    if (last && seq.workflowId !== null) this.forecast?.observeGrowth(seq.numPromptTokens - last.promptTokens);
    w.agents.set(agent, { context: seq.tokens, calls: (last?.calls ?? 0) + 1, promptTokens: seq.numPromptTokens, maxTokens: seq.maxTokens, busy: (last?.busy ?? 0) + 1, expectedUntil: last?.expectedUntil ?? 0 });
  }

  /**
   * Pages admission holds for the live workflows now: each one's agent contexts (the shared head
   * once) and what they are expected still to grow by.
   */
  reservedPages(): number {
    const bound = this.starvationBoundMs();
    let pages = 0;
    for (const w of this.workflows.values()) if (this.reservesRoom(w, bound)) pages += this.footprint(w);
    return pages;
  }

  /** The starvation bound now (ms), counting the waits of the calls still queued for their first start. */
  starvationBoundMs(): number {
    if (!this.starvation.adaptive) return this.starvation.currentMs();
    const now = this.clock();
    const queued: number[] = [];
    for (const w of this.workflows.values()) {
      for (const s of w.waiting) if (!this.startedOnce.has(s)) queued.push(now - s.queuedAt);
    }
    return this.starvation.currentMs(queued);
  }

  /** The service level of the sequence's workflow (0 for the least served). */
  levelOf(seq: Sequence): number {
    return this.levelOfService(this.serviceOf(seq));
  }

  /**
   * When a retention key's pages will be needed (larger: later), for evicting pins (KVFlow): the
   * workflow's service level first (a more served workflow's next call waits behind the others),
   * then when its agent should come back from its tool (its last finish plus the workflow's mean
   * gap between calls; the most recent finish when no gap is known yet).
   */
  private nextUseRank(key: string): number[] {
    const workflowKey = key.slice(0, key.indexOf('\u0000'));
    const w = this.workflows.get(workflowKey);
    const back = (this.finishedAt.get(key) ?? 0) + (w?.meanGapMs ?? 0);
    return [w ? this.levelOfService(w.service) : 0, back];
  }

  private levelOfService(service: number): number {
    const q = this.serviceQuantumTokens;
    return q === 1 ? service : Math.floor(Math.log2(service / q + 1));
  }

  private serviceOf(seq: Sequence): number {
    return this.workflows.get(keyOf(seq))?.service ?? 0;
  }

  /** Cached pages a waiting sequence would start with (0 for one holding pages). */
  private cachedPrefixPages(seq: Sequence): number {
    if (seq.blockTable.length || seq.numComputed || seq.leader) return 0;
    return this.kv.lookupPrefix(seq.kv).pages.length;
  }
}

function commonPrefix(a: readonly number[], b: readonly number[]): number {
  let n = 0;
  while (n < a.length && n < b.length && a[n] === b[n]) n++;
  return n;
}

/** A call's agent within its workflow: calls of a named workflow without agent_id are one agent (as their kept pages are). */
function agentOf(seq: Sequence): string {
  if (seq.workflowId === null) return `#${seq.id}`;
  return seq.agentId ?? '';
}

function named(workflowId: string): string {
  return `w:${workflowId}`;
}

function keyOf(seq: Sequence): string {
  return seq.workflowId === null ? `c:${seq.id}` : named(seq.workflowId);
}

function retentionKey(workflowKey: string, agentId: string | null): string {
  return `${workflowKey}\u0000${agentId ?? ''}`;
}
