// Replays a slice of a public request trace (Mooncake's FAST'25 traces; see bench/trace.ts for
// the format, the 512-token-block-to-page scaling and how workflows and agents are inferred)
// under the fcfs and the workflow policy, and prints the bench:agents comparison. Arrivals are
// open-loop at the trace's timestamps times --time-scale. A workflow's completion time runs
// from its first call's arrival to its last answer; after its last call of the slice answers, the
// bench ends the workflow (engine.workflows.end), as a client that knows it is done would.
// --engine sim (default): the real Scheduler, KV manager and policies in simulated time (a step
// costs --step-ms + --token-ms per token, as bench/agents-sim.ts; the answers are a hash of the
// tokens); --engine gpu: the shipped model on the WebGPU adapter (greedy).
// Use: npx tsx bench/agents-trace.ts --trace PATH [--skip 0 --limit 200 --time-scale 1 --kv-pages 80
//   --context 256 --multi --engine sim|gpu --step-ms 20 --token-ms 8 --first fcfs|workflow --starvation-ms N --ttl-ms N|adaptive (default adaptive)
//   --ttl-percentile 90 --ttl-margin 1.5 --ttl-min-gaps 3 (sim only)]
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { HashPrefixCache, KvManager, PagePool } from '../src/kv/index.js';
import { fcfs, Scheduler, Sequence, WorkflowPolicy, type SchedulingPolicy } from '../src/scheduler/index.js';
import { createEngine } from '../src/index.js';
import type { SamplingParams } from '../src/engine/index.js';
import { printPolicyComparison, retentionNote, starvationNote, stepNote, type WorkflowRun } from './stats.js';
import { readTrace, sliceTrace, type TraceCall } from './trace.js';

const { values: args } = parseArgs({
  options: {
    trace: { type: 'string' },
    skip: { type: 'string', default: '0' },
    limit: { type: 'string', default: '200' },
    'time-scale': { type: 'string', default: '1' },
    'kv-pages': { type: 'string', default: '80' },
    context: { type: 'string', default: '256' },
    engine: { type: 'string', default: 'sim' },
    'step-ms': { type: 'string', default: '20' },
    'token-ms': { type: 'string', default: '8' },
    first: { type: 'string', default: 'fcfs' },
    'starvation-ms': { type: 'string' },
    'ttl-ms': { type: 'string' },
    /** Tuning of the adaptive TTL (RetentionTtl): percentile, margin, gaps needed. */
    'ttl-percentile': { type: 'string' },
    'ttl-margin': { type: 'string' },
    'ttl-min-gaps': { type: 'string' },
    /** Keep only the calls of workflows with more than one call in the slice. */
    multi: { type: 'boolean', default: false },
  },
});
if (!args.trace) throw new Error('--trace PATH is required (a Mooncake-format .jsonl trace; not in this repository)');
if (args.engine !== 'sim' && args.engine !== 'gpu') throw new Error(`--engine must be sim or gpu, got ${args.engine}`);
if (args.first !== 'fcfs' && args.first !== 'workflow') throw new Error(`--first must be fcfs or workflow, got ${args.first}`);
const PAGE = 16;
const KV_PAGES = Number(args['kv-pages']);
const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));
const STARVATION_MS = num(args['starvation-ms']);
const TTL_MS = args['ttl-ms'] === 'adaptive' ? 'adaptive' : num(args['ttl-ms']);
/** Sim only: the adaptive TTL's tuning. */
const TTL_TUNING = { percentile: num(args['ttl-percentile']), margin: num(args['ttl-margin']), minGaps: num(args['ttl-min-gaps']) };
const MODEL = fileURLToPath(new URL('../models/wg-tolstoy-q8_0.gguf', import.meta.url));

interface Run extends WorkflowRun { answers: string[]; note: string }

/** Per workflow: its first arrival, last finish and calls left; records a finish, ending the workflow on its last. */
class WorkflowClock {
  private readonly open = new Map<string, { first: number; left: number }>();
  readonly completionMs: number[] = [];
  constructor(calls: readonly TraceCall[]) {
    for (const c of calls) {
      const w = this.open.get(c.workflowId);
      if (w) w.left++;
      else this.open.set(c.workflowId, { first: c.atMs, left: 1 });
    }
  }

  /** True when that was the workflow's last call. */
  finished(workflowId: string, now: number): boolean {
    const w = this.open.get(workflowId)!;
    if (--w.left > 0) return false;
    this.completionMs.push(now - w.first);
    return true;
  }
}

function simulate(calls: readonly TraceCall[], which: 'fcfs' | 'workflow', contextLength: number): Run {
  const stepMs = Number(args['step-ms']);
  const tokenMs = Number(args['token-ms']);
  let now = 0;
  const clock = () => now;
  const pool = new PagePool(KV_PAGES);
  const kv = new KvManager(pool, PAGE, new HashPrefixCache(pool, PAGE, 'sim'));
  const wp = new WorkflowPolicy({ kv, clock, contextLength, starvationMs: STARVATION_MS, retentionTtlMs: TTL_MS, adaptiveRetention: TTL_TUNING });
  const policy: SchedulingPolicy = which === 'fcfs' ? fcfs : wp;
  const sched = new Scheduler({ kv, contextLength, policy, clock });
  const workflows = new WorkflowClock(calls);
  const run: Run = { completionMs: workflows.completionMs, ttftMs: [], generated: 0, promptTokens: 0, cachedTokens: 0, preemptions: 0, seconds: 0, answers: [], note: '' };
  const byId = new Map<number, { call: TraceCall; first: number }>();
  let next = 0;
  for (;;) {
    while (next < calls.length && calls[next].atMs <= now) {
      const c = calls[next++];
      const seq = new Sequence({ id: c.index, promptIds: c.promptIds, maxTokens: c.maxTokens, workflowId: c.workflowId, agentId: c.agentId });
      byId.set(seq.id, { call: c, first: 0 });
      sched.add(seq);
    }
    const step = sched.schedule();
    if (!step) {
      if (next >= calls.length && !sched.hasWork) break;
      if (next >= calls.length) throw new Error('stuck');
      now = Math.max(now, calls[next].atMs);
      continue;
    }
    const tokens = step.seqs.reduce((n, s) => n + s.numTokens, 0);
    now += stepMs + tokenMs * tokens;
    sched.stepCost?.observe(tokens, stepMs + tokenMs * tokens);
    const sampled = step.seqs.filter((s) => s.samples).map(({ seq, numTokens }) => hashToken(seq.tokens.slice(0, seq.numComputed + numTokens)));
    const result = sched.commit(step, sampled);
    for (const { seq } of result.appended) byId.get(seq.id)!.first ||= now;
    for (const seq of result.finished) {
      const info = byId.get(seq.id)!;
      run.ttftMs.push((info.first || now) - info.call.atMs);
      run.generated += seq.generated.length;
      run.promptTokens += seq.numPromptTokens;
      run.cachedTokens += seq.cachedTokens ?? 0;
      run.preemptions += seq.preemptions;
      run.answers[info.call.index] = seq.generated.join(',');
      if (workflows.finished(info.call.workflowId, now)) wp.end(info.call.workflowId);
    }
  }
  run.seconds = now / 1000;
  if (which === 'workflow') run.note = `${starvationNote(wp)}\n${retentionNote(wp)}`;
  return run;
}

function hashToken(history: readonly number[]): number {
  let h = 2166136261;
  for (const t of history) h = Math.imul(h ^ (t + 1), 16777619) >>> 0;
  return 4 + (h % 31996);
}

const GREEDY: SamplingParams = {
  maxTokens: 1, temperature: 0, topK: 0, topP: 1, minP: 0, frequencyPenalty: 0, presencePenalty: 0,
  repetitionPenalty: 1, logitBias: new Map(), seed: 0, stopIds: [], stopStrings: [],
};

async function onGpu(calls: readonly TraceCall[], which: 'fcfs' | 'workflow', pageBytes: number): Promise<Run> {
  const engine = await createEngine({ model: MODEL, policy: which, kvMemoryBytes: pageBytes * KV_PAGES, starvationMs: STARVATION_MS, retentionTtlMs: TTL_MS });
  try {
    const core = engine.core!;
    // Compile every pipeline first, with prompts the trace never uses.
    await Promise.all([[5, 6, 7, 8], [9, 10, 11, 12, 13, 14]].map(async (ids) => {
      for await (const _ of core.submit(ids, { ...GREEDY, maxTokens: 3 }).events);
    }));
    await engine.resetChat();
    const workflows = new WorkflowClock(calls);
    const run: Run = { completionMs: workflows.completionMs, ttftMs: [], generated: 0, promptTokens: 0, cachedTokens: 0, preemptions: 0, seconds: 0, answers: [], note: '' };
    const start = performance.now();
    await Promise.all(calls.map(async (c) => {
      await new Promise((resolve) => setTimeout(resolve, c.atMs - (performance.now() - start)));
      const sent = performance.now() - start;
      const tokens: number[] = [];
      let first = 0;
      for await (const e of core.submit(c.promptIds, { ...GREEDY, maxTokens: c.maxTokens }, { workflowId: c.workflowId, agentId: c.agentId }).events) {
        if (e.type === 'token') {
          first ||= performance.now() - start;
          tokens.push(e.tokenId);
        }
      }
      run.ttftMs.push(first - sent);
      run.answers[c.index] = tokens.join(',');
      if (workflows.finished(c.workflowId, performance.now() - start)) core.endWorkflow(c.workflowId);
    }));
    run.seconds = (performance.now() - start) / 1000;
    const m = engine.metrics();
    Object.assign(run, { generated: m.generatedTokens, promptTokens: m.promptTokens, cachedTokens: m.cachedPromptTokens, preemptions: m.preemptions });
    run.note = stepNote(which, m.steps, core.scheduler.stepCost?.estimate()) + (core.workflowPolicy ? `\n${starvationNote(core.workflowPolicy)}\n${retentionNote(core.workflowPolicy)}` : '');
    return run;
  } finally {
    await engine.destroy();
  }
}

const records = readTrace(args.trace);
let vocab = 32000;
let pageBytes = 0;
let contextLength = Number(args.context);
if (args.engine === 'gpu') {
  const probe = await createEngine({ model: MODEL });
  vocab = probe.core!.model.config.vocabSize;
  contextLength = probe.core!.contextLength;
  pageBytes = probe.core!.kv.bytes / probe.core!.kv.pool.totalPages;
  await probe.destroy();
}
const slice = sliceTrace(records, { skip: Number(args.skip), limit: Number(args.limit), timeScale: Number(args['time-scale']), pageSize: PAGE, vocab, contextLength, multiOnly: args.multi });
const { calls } = slice;
if (!calls.length) throw new Error('no call of the slice fits the context');
const order = args.first === 'fcfs' ? (['fcfs', 'workflow'] as const) : (['workflow', 'fcfs'] as const);
const runs: [string, Run][] = [];
for (const p of order) runs.push([p, args.engine === 'sim' ? simulate(calls, p, contextLength) : await onGpu(calls, p, pageBytes)]);

const workflowCount = new Set(calls.map((c) => c.workflowId)).size;
const callsPer = new Map<string, number>();
for (const c of calls) callsPer.set(c.workflowId, (callsPer.get(c.workflowId) ?? 0) + 1);
const multi = [...callsPer.values()].filter((n) => n > 1).length;
const agents = new Set(calls.map((c) => `${c.workflowId}/${c.agentId}`)).size;
const promptMean = calls.reduce((n, c) => n + c.promptIds.length, 0) / calls.length;
const span = calls[calls.length - 1].atMs / 1000;
console.log(`\ntrace ${args.trace}: requests ${args.skip}..${Number(args.skip) + Number(args.limit) - 1}, ${calls.length} calls replayed (${slice.tooLong} longer than the context ${contextLength} left out), ` +
  `${args.multi ? 'only workflows with more than one call: ' : ''}${workflowCount} workflows (${multi} with more than one call), ${agents} agents; leading blocks shared by every request: ${slice.commonBlocks}; ` +
  `mean prompt ${promptMean.toFixed(0)} tokens; arrivals over ${span.toFixed(1)} s (time scale ${args['time-scale']}); KV ${KV_PAGES} pages of ${PAGE}; ` +
  (args.engine === 'sim' ? `simulated, step ${args['step-ms']} ms + ${args['token-ms']} ms/token\n` : 'wg-tolstoy-q8_0 on the WebGPU adapter\n'));
printPolicyComparison(runs);
for (const [p, r] of runs) if (r.note && (args.engine === 'gpu' || p === 'workflow')) console.log(r.note);
console.log(`every answer the same under both policies: ${runs[0][1].answers.join('|') === runs[1][1].answers.join('|') ? 'yes' : 'NO'}`);
