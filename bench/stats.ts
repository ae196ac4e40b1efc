// Statistics and tables the bench scripts share: percentiles, means, a seeded generator, and the
// fcfs-vs-workflow comparison the agentic benches print (bench:agents, agents-sim, agents-trace).
import type { StepCost, WorkflowPolicy } from '../src/scheduler/index.js';

/** The p-th percentile (nearest rank, p in 0..100) of `values`; NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

export const mean = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

/** mulberry32, the tests' seeded generator (the same sequences in benches and tests). */
export { rng } from '../test/helpers/random.js';

/** One policy's run of an agentic workload. */
export interface WorkflowRun {
  /** Per workflow: first call sent to last answer (ms). */
  completionMs: number[];
  /** Per call (ms). */
  ttftMs: number[];
  /** Per call, whether it was its agent's first (held by admission while its workflow waits for room; the rest find their context kept). */
  firstCall?: boolean[];
  generated: number;
  promptTokens: number;
  cachedTokens: number;
  preemptions: number;
  seconds: number;
}

interface Row { mean: number; p95: number; tps: number; computed: number; ttft50: number; ttft95: number }

function summarise(r: WorkflowRun): Row {
  return {
    mean: mean(r.completionMs) / 1000, p95: percentile(r.completionMs, 95) / 1000, tps: r.generated / r.seconds,
    computed: r.promptTokens - r.cachedTokens, ttft50: percentile(r.ttftMs, 50), ttft95: percentile(r.ttftMs, 95),
  };
}

/** Prints the per-policy table and the workflow / fcfs ratios (runs must hold 'fcfs' and 'workflow'). */
export function printPolicyComparison(runs: readonly (readonly [string, WorkflowRun])[]): void {
  console.log('| policy | workflow completion mean / p95 s | generated tok/s | prompt tokens computed (of total) | preemptions | TTFT p50 / p95 ms | total s |');
  console.log('|---|---|---|---|---|---|---|');
  for (const [name, r] of runs) {
    const x = summarise(r);
    console.log(`| ${name} | ${x.mean.toFixed(2)} / ${x.p95.toFixed(2)} | ${x.tps.toFixed(1)} | ${x.computed} (${r.promptTokens}) | ${r.preemptions} | ${x.ttft50.toFixed(0)} / ${x.ttft95.toFixed(0)} | ${r.seconds.toFixed(1)} |`);
  }
  const [f, w] = ['fcfs', 'workflow'].map((p) => summarise(runs.find(([name]) => name === p)![1]));
  for (const [name, r] of runs) if (r.firstCall) console.log(ttftSplit(name, r.ttftMs, r.firstCall));
  console.log(`\nworkflow / fcfs: completion mean ${(w.mean / f.mean).toFixed(2)}x, p95 ${(w.p95 / f.p95).toFixed(2)}x, generated tok/s ${(w.tps / f.tps).toFixed(2)}x, ` +
    `prompt tokens computed ${(w.computed / f.computed).toFixed(2)}x, TTFT p50 ${(w.ttft50 / f.ttft50).toFixed(2)}x, p95 ${(w.ttft95 / f.ttft95).toFixed(2)}x`);
}

/** TTFT p50 / p95 of agents' first calls and of their later calls. */
function ttftSplit(name: string, ttftMs: readonly number[], firstCall: readonly boolean[]): string {
  const first = ttftMs.filter((_, i) => firstCall[i]);
  const later = ttftMs.filter((_, i) => !firstCall[i]);
  const p = (xs: number[]) => `${percentile(xs, 50).toFixed(0)} / ${percentile(xs, 95).toFixed(0)} ms`;
  return `${name}: TTFT p50 / p95 of agents' first calls ${p(first)} (${first.length}), of later calls ${p(later)} (${later.length})`;
}

/** What the workflow policy's starvation bound did in a run. */
export function starvationNote(p: WorkflowPolicy): string {
  return `${p.starvedStarts} calls started past the starvation bound; bound at the end ${(p.starvationBoundMs() / 1000).toFixed(1)} s ` +
    `(${p.starvation.adaptive ? 'adaptive' : 'fixed'}; mean queue time of the last ${p.starvation.window} starts ${(p.starvation.meanWaitMs / 1000).toFixed(1)} s)`;
}

/** The workflow policy's retention TTL at the end of a run and the gaps it follows. */
export function retentionNote(p: WorkflowPolicy): string {
  const t = p.ttl;
  if (!t.adaptive) return `retention TTL fixed at ${(t.fixedMs! / 1000).toFixed(1)} s`;
  const gaps = t.global.count ? `p${t.percentile} of the last ${t.global.count} gaps between calls ${(t.global.percentile(t.percentile) / 1000).toFixed(2)} s` : 'no gap measured';
  return `retention TTL at the end ${(p.retentionTtlMs() / 1000).toFixed(2)} s (adaptive, ${p.retentionTtlSource()}; ${gaps})`;
}

/** The steps a run took and the step cost the engine fitted (fixed + per token) at its end. */
export function stepNote(policy: string, steps: number, cost: StepCost | null | undefined): string {
  return `${policy}: ${steps} steps; fitted step cost ${cost ? `${cost.fixedMs.toFixed(1)} ms + ${cost.perTokenMs.toFixed(2)} ms/token` : 'none'}`;
}
