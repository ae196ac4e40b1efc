// A Scheduler over the fake model, with the prefix cache and a fake clock, for the scheduler
// policy unit tests (workflow policy, KV kept across calls, latency-aware packing): no GPU.
import { HashPrefixCache, KvManager, PagePool } from '../../src/kv/index.js';
import { Scheduler, Sequence, WorkflowPolicy, fcfs, type ScheduledStep, type SchedulingPolicy, type WorkflowPolicyOptions } from '../../src/scheduler/index.js';
import { FakeModel, VOCAB } from './fake-model.js';

export const PAGE = 4;

export interface FakeSchedulerOptions {
  pages: number;
  /** 'workflow' (default) or 'fcfs' (the workflow policy is still built, for its state). */
  policy?: 'workflow' | 'fcfs' | 'none';
  maxBatchTokens?: number;
  maxRunningSeqs?: number;
  contextLength?: number;
  latencyPacking?: boolean;
  /** The workflow policy's options besides kv and clock (serviceQuantumTokens defaults to 1: exact least attained service). */
  workflow?: Omit<WorkflowPolicyOptions, 'kv' | 'clock'>;
}

/** A scheduler, its pool, policy and fake clock (`clock.now`, ms), and helpers that run steps through the fake model. */
export function fakeScheduler(o: FakeSchedulerOptions) {
  const clock = { now: 0 };
  const pool = new PagePool(o.pages);
  const kv = new KvManager(pool, PAGE, new HashPrefixCache(pool, PAGE, 'fake'));
  const workflow = new WorkflowPolicy({ kv, clock: () => clock.now, contextLength: o.contextLength ?? 256, ...o.workflow, serviceQuantumTokens: o.workflow?.serviceQuantumTokens ?? 1 });
  const policy: SchedulingPolicy | undefined = o.policy === 'fcfs' ? fcfs : o.policy === 'none' ? undefined : workflow;
  const sched = new Scheduler({
    kv, contextLength: o.contextLength ?? 256, maxBatchTokens: o.maxBatchTokens ?? 64, maxRunningSeqs: o.maxRunningSeqs, policy,
    clock: () => clock.now, latencyPacking: o.latencyPacking,
  });
  const model = new FakeModel(PAGE);
  const step = (): ScheduledStep | null => {
    const s = sched.schedule();
    if (s) sched.commit(s, model.run(s.batch, s.kvOps));
    sched.checkInvariants();
    return s;
  };
  const drain = () => {
    while (sched.hasWork) step();
  };
  return { clock, pool, kv, sched, workflow, model, step, drain };
}

/** `n` deterministic token ids from `base` (different bases: different prompts). */
export const tokens = (n: number, base: number) => Array.from({ length: n }, (_, i) => (base * 131 + i * 17) % VOCAB);

let nextId = 1;
/** A new call (sequence) with a fresh id. */
export const call = (promptIds: number[], maxTokens: number, workflowId: string | null = null, agentId: string | null = null, priority = 0) =>
  new Sequence({ id: nextId++, promptIds, maxTokens, workflowId, agentId, priority });
