// What the engine has done: per-step batch sizes and page use (for live charts), and per-request
// timings rolled up into the prefill / decode speeds of runtimeStatsText.
import type { KvManager, PagePool, PrefixCacheStats } from '../kv/index.js';
import type { ScheduledStep, TtlSource } from '../scheduler/index.js';
import type { SeqTimings } from './engine-core.js';
import { WorkflowMetrics, type RetainedPagesOf, type WorkflowFigures } from './workflow-metrics.js';

export interface StepRecord {
  /** performance.now() when the step ended. */
  at: number;
  durationMs: number;
  runningSeqs: number;
  prefillTokens: number;
  decodeTokens: number;
  pagesUsed: number;
  pagesFree: number;
  /** Unreferenced pages kept by the prefix cache. */
  pagesCached: number;
}

export interface PrefixCacheMetrics {
  enabled: boolean;
  /** Tokens looked up when sequences started (again after a preemption). */
  queryTokens: number;
  /** Of those, tokens found in the cache (not computed). */
  hitTokens: number;
  /** hitTokens / queryTokens (0 before any lookup). */
  hitRate: number;
  /** Unreferenced pages the cache holds now. */
  cachedPages: number;
  /** Cached pages freed to make room. */
  evictions: number;
  /** Pages copied before a write (copy-on-write, n > 1 choices). */
  pageCopies: number;
}

export interface MetricsSnapshot {
  steps: number;
  /** Tokens sampled by every step so far (running and finished requests), for live rates. */
  sampledTokens: number;
  requests: number;
  promptTokens: number;
  generatedTokens: number;
  /** Times a sequence lost its pages and was recomputed. */
  preemptions: number;
  /** Prompt tokens per second of time to first token, over finished requests. */
  prefillTokensPerSecond: number;
  /** Tokens after the first per second of decoding time, over finished requests. */
  decodeTokensPerSecond: number;
  /** Time to first token of finished requests, ms, oldest first (last 256). */
  timeToFirstTokenMs: number[];
  /** Prompt tokens of finished requests taken from the prefix cache. */
  cachedPromptTokens: number;
  prefixCache: PrefixCacheMetrics;
  /** Sums over finished requests of queue time, TTFT and inter-token gaps (ms), with their counts. */
  latency: { queueMsSum: number; ttftMsSum: number; ttftCount: number; itlMsSum: number; itlCount: number };
  /**
   * Per workflow, with its agents: the most recently active ones, then '_other' (older ones, folded)
   * and '_none' (calls without a workflow). Their figures add up to the totals above.
   */
  workflows: WorkflowFigures[];
  /** Workflows ended lately and their mean completion time (first arrival to last finish). */
  workflowCompletion: { ended: number; meanMs: number };
  /** KV pages pinned for workflows' next calls (a part of the cached pages). */
  retainedPages: number;
  /** The workflow policy's bounds now (null under fcfs). */
  workflowPolicy: WorkflowPolicyFigures | null;
  last: StepRecord | null;
}

/** What the workflow policy's adaptive settings are now. */
export interface WorkflowPolicyFigures {
  /** A call queued longer than this (ms) goes first. */
  starvationBoundMs: number;
  starvationAdaptive: boolean;
  /** The TTL (ms) of a finished call's kept pages, from every workflow's gaps (a workflow with gaps of its own uses them). */
  retentionTtlMs: number;
  /** What it follows: 'fixed' (a number given), 'global' (measured gaps), 'fallback' (10 s: too few gaps yet). */
  retentionTtlSource: TtlSource;
  /** Gaps between a call's finish and its agent's next call measured (the last 64 count). */
  gapsMeasured: number;
  /** Gaps needed before the TTL follows them (before: the 10 s fallback). */
  gapsNeeded: number;
  /** Pages admission holds for the live workflows: their agents' contexts and their expected growth. */
  reservedPages: number;
  /** Tokens a call is expected to add to its agent's context, as measured (0: none measured yet; null: no growth forecast). */
  growthTokensPerCall: number | null;
  /** Whether the calls an agent still makes are learnt from ended workflows (else: as many again as it made). */
  callsLearnt: boolean;
  /** Kept pages evicted before their agent's next call took them, since the engine started (a pool too small for the live workflows). */
  keptPagesEvicted: number;
}

const KEEP = 256;

export class EngineMetrics {
  private stepCount = 0;
  private cachedPromptTokens = 0;
  /** The KV manager's counters when the metrics were last reset. */
  private kvBaseline: PrefixCacheStats;
  private sampled = 0;
  private requests = 0;
  private promptTokens = 0;
  private generatedTokens = 0;
  private preemptions = 0;
  private prefillMs = 0;
  private decodeTokens = 0;
  private decodeMs = 0;
  private readonly ttft: number[] = [];
  private readonly recent: StepRecord[] = [];
  private readonly latency = { queueMsSum: 0, ttftMsSum: 0, ttftCount: 0, itlMsSum: 0, itlCount: 0 };
  readonly workflows: WorkflowMetrics;
  /** Pages kept for an agent's next call (set by an engine running the workflow policy). */
  retainedPagesOf: RetainedPagesOf = () => 0;
  /** The workflow policy's bounds now (set by an engine running the workflow policy). */
  policyFigures: () => WorkflowPolicyFigures | null = () => null;

  constructor(private readonly kv: KvManager | null = null, private readonly keepWorkflows = 32) {
    this.workflows = new WorkflowMetrics(keepWorkflows);
    this.kvBaseline = { ...(kv?.stats ?? { queryTokens: 0, hitTokens: 0, evictions: 0, pageCopies: 0 }) };
  }

  recordStep(step: ScheduledStep, durationMs: number, pool: PagePool): void {
    this.stepCount++;
    this.sampled += step.seqs.filter((s) => s.samples).length;
    let prefill = 0;
    let decode = 0;
    for (const s of step.seqs) {
      if (s.numTokens === 1 && s.seq.numPromptTokens < s.seq.numComputed) decode++;
      else prefill += s.numTokens;
    }
    this.push(this.recent, {
      at: performance.now(),
      durationMs,
      runningSeqs: step.seqs.length,
      prefillTokens: prefill,
      decodeTokens: decode,
      pagesUsed: pool.usedPages,
      pagesFree: pool.freePages,
      pagesCached: pool.cachedPages,
    });
  }

  recordFinished(t: SeqTimings): void {
    this.requests++;
    this.promptTokens += t.promptTokens;
    this.cachedPromptTokens += t.cachedTokens;
    this.generatedTokens += t.generatedTokens;
    this.preemptions += t.preemptions;
    this.workflows.recordFinished(t);
    this.latency.queueMsSum += t.scheduledAt ? t.scheduledAt - t.arrivedAt : t.finishedAt - t.arrivedAt;
    if (!t.firstTokenAt) return;
    const ttft = t.firstTokenAt - t.arrivedAt;
    this.latency.ttftMsSum += ttft;
    this.latency.ttftCount++;
    if (t.generatedTokens > 1) {
      this.latency.itlMsSum += t.finishedAt - t.firstTokenAt;
      this.latency.itlCount += t.generatedTokens - 1;
    }
    this.push(this.ttft, ttft);
    this.prefillMs += ttft;
    if (t.generatedTokens > 1) {
      this.decodeTokens += t.generatedTokens - 1;
      this.decodeMs += t.finishedAt - t.firstTokenAt;
    }
  }

  /** Steps since `since` (performance.now() time), oldest first. */
  stepsSince(since: number): StepRecord[] {
    return this.recent.filter((r) => r.at > since);
  }

  snapshot(): MetricsSnapshot {
    return {
      steps: this.stepCount,
      sampledTokens: this.sampled,
      requests: this.requests,
      promptTokens: this.promptTokens,
      generatedTokens: this.generatedTokens,
      preemptions: this.preemptions,
      prefillTokensPerSecond: rate(this.promptTokens, this.prefillMs),
      decodeTokensPerSecond: rate(this.decodeTokens, this.decodeMs),
      timeToFirstTokenMs: [...this.ttft],
      cachedPromptTokens: this.cachedPromptTokens,
      prefixCache: this.prefixCache(),
      latency: { ...this.latency },
      workflows: this.workflows.snapshot(this.retainedPagesOf),
      workflowCompletion: this.workflows.completionSummary(),
      retainedPages: this.kv?.pool.retainedPages ?? 0,
      workflowPolicy: this.policyFigures(),
      last: this.recent.at(-1) ?? null,
    };
  }

  /** web-llm's format: "prefill: 123.4 tokens/sec, decode: 45.6 tokens/sec". */
  text(): string {
    const s = this.snapshot();
    const p = s.prefixCache;
    const prefix = p.enabled
      ? `; prefix cache: ${p.hitTokens} of ${p.queryTokens} tokens hit (${(p.hitRate * 100).toFixed(1)}%), ${p.cachedPages} pages cached, ${p.evictions} evictions`
      : '; prefix cache off';
    const named = s.workflows.filter((w) => w.workflowId !== '_none');
    const done = s.workflowCompletion;
    const flows = named.length
      ? `; ${named.length} workflow${named.length === 1 ? '' : 's'} (${s.retainedPages} pages retained` +
        (done.ended ? `, ${done.ended} ended, mean completion ${(done.meanMs / 1000).toFixed(2)} s)` : ')')
      : '';
    const policy = s.workflowPolicy;
    const bounds = policy
      ? `; workflow policy: starvation bound ${(policy.starvationBoundMs / 1000).toFixed(1)} s${policy.starvationAdaptive ? ' (adaptive)' : ''}, ` +
        `retention TTL ${(policy.retentionTtlMs / 1000).toFixed(1)} s (${ttlOrigin(policy)}), ${policy.reservedPages} pages reserved for live workflows`
      : '';
    return `prefill: ${s.prefillTokensPerSecond.toFixed(1)} tokens/sec, decode: ${s.decodeTokensPerSecond.toFixed(1)} tokens/sec` +
      ` (${s.requests} requests, ${s.promptTokens} prompt and ${s.generatedTokens} generated tokens, ${s.steps} steps${prefix}${flows}${bounds})`;
  }

  reset(): void {
    const { retainedPagesOf, policyFigures } = this;
    Object.assign(this, new EngineMetrics(this.kv, this.keepWorkflows));
    Object.assign(this, { retainedPagesOf, policyFigures });
  }

  private prefixCache(): PrefixCacheMetrics {
    const now = this.kv?.stats ?? this.kvBaseline;
    const b = this.kvBaseline;
    const queryTokens = now.queryTokens - b.queryTokens;
    const hitTokens = now.hitTokens - b.hitTokens;
    return {
      enabled: this.kv?.cache.enabled ?? false,
      queryTokens,
      hitTokens,
      hitRate: queryTokens > 0 ? hitTokens / queryTokens : 0,
      cachedPages: this.kv?.pool.cachedPages ?? 0,
      evictions: now.evictions - b.evictions,
      pageCopies: now.pageCopies - b.pageCopies,
    };
  }

  private push<T>(list: T[], item: T): void {
    list.push(item);
    if (list.length > KEEP) list.shift();
  }
}

function ttlOrigin(p: WorkflowPolicyFigures): string {
  if (p.retentionTtlSource === 'fixed') return 'fixed';
  if (p.retentionTtlSource === 'fallback') return `default until ${p.gapsNeeded} gaps between calls are measured, ${p.gapsMeasured} so far`;
  return `from ${p.gapsMeasured} measured gaps between calls`;
}

function rate(tokens: number, ms: number): number {
  return ms > 0 ? (tokens * 1000) / ms : 0;
}
