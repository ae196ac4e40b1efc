// What the engine has done: per-step batch sizes and page use (for live charts), and per-request
// timings rolled up into the prefill / decode speeds of runtimeStatsText.
import type { PagePool } from '../kv/index.js';
import type { ScheduledStep } from '../scheduler/index.js';
import type { SeqTimings } from './engine-core.js';

export interface StepRecord {
  /** performance.now() when the step ended. */
  at: number;
  durationMs: number;
  runningSeqs: number;
  prefillTokens: number;
  decodeTokens: number;
  pagesUsed: number;
  pagesFree: number;
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
  last: StepRecord | null;
}

const KEEP = 256;

export class EngineMetrics {
  private stepCount = 0;
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
    });
  }

  recordFinished(t: SeqTimings): void {
    this.requests++;
    this.promptTokens += t.promptTokens;
    this.generatedTokens += t.generatedTokens;
    this.preemptions += t.preemptions;
    if (!t.firstTokenAt) return;
    const ttft = t.firstTokenAt - t.arrivedAt;
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
      last: this.recent.at(-1) ?? null,
    };
  }

  /** web-llm's format: "prefill: 123.4 tokens/sec, decode: 45.6 tokens/sec". */
  text(): string {
    const s = this.snapshot();
    return `prefill: ${s.prefillTokensPerSecond.toFixed(1)} tokens/sec, decode: ${s.decodeTokensPerSecond.toFixed(1)} tokens/sec` +
      ` (${s.requests} requests, ${s.promptTokens} prompt and ${s.generatedTokens} generated tokens, ${s.steps} steps)`;
  }

  reset(): void {
    Object.assign(this, new EngineMetrics());
  }

  private push<T>(list: T[], item: T): void {
    list.push(item);
    if (list.length > KEEP) list.shift();
  }
}

function rate(tokens: number, ms: number): number {
  return ms > 0 ? (tokens * 1000) / ms : 0;
}
