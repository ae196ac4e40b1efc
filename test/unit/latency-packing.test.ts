import { describe, expect, it } from 'vitest';
import { StepCostModel, type ScheduledStep } from '../../src/scheduler/index.js';
import { runAlone } from '../helpers/fake-model.js';
import { call, fakeScheduler, tokens } from '../helpers/fake-scheduler.js';

const seq = (n: number, base: number, maxTokens = 3) => call(tokens(n, base), maxTokens);

/** A fcfs scheduler whose step cost is learnt from 16 observations of fixedMs + perTokenMs × tokens. */
function setup(cost: { fixedMs: number; perTokenMs: number } | null, latencyPacking = true) {
  const { sched, step } = fakeScheduler({ pages: 64, policy: 'none', contextLength: 128, maxBatchTokens: 256, latencyPacking });
  if (cost) for (let t = 1; t <= 16; t++) sched.stepCost?.observe(t * 8, cost.fixedMs + cost.perTokenMs * t * 8);
  return { sched, step };
}

const shape = (s: ScheduledStep) => s.seqs.map((e) => [e.seq.id, e.numTokens, e.samples]);

describe('StepCostModel', () => {
  it('fits fixed and per-token cost from observed steps, and answers only after enough varied ones', () => {
    const m = new StepCostModel(16, 4);
    m.observe(8, 30);
    m.observe(8, 30);
    m.observe(8, 30);
    m.observe(8, 30);
    expect(m.estimate()).toBeNull(); // one size only: no slope
    m.observe(40, 94);
    const e = m.estimate()!;
    expect(e.fixedMs).toBeCloseTo(14, 6);
    expect(e.perTokenMs).toBeCloseTo(2, 6);
    expect(() => new StepCostModel(1)).toThrow(/window/);
  });

  it('keeps a window and clamps a negative slope to 0', () => {
    const m = new StepCostModel(4, 2);
    for (const [t, ms] of [[1, 100], [2, 200], [10, 50], [20, 40], [30, 30], [40, 20]]) m.observe(t, ms);
    expect(m.estimate()).toEqual({ fixedMs: 35, perTokenMs: 0 });
  });
});

describe('Scheduler: latency-aware packing', () => {
  it('on a device where every token costs (a CPU adapter), puts one waiting prompt per step', () => {
    const { sched, step } = setup({ fixedMs: 20, perTokenMs: 10 });
    const [a, b, c] = [seq(12, 1), seq(12, 2), seq(12, 3)];
    for (const s of [a, b, c]) sched.add(s);
    // After a completes its prompt, b may add (20 × (1 + 1 prompt behind it)) / 10 = 4 tokens: a partial chunk; c waits.
    expect(shape(step()!)).toEqual([[a.id, 12, true], [b.id, 4, false]]);
    // a decodes (1 row); b's continuation is a running prefill and goes whole; c then may add (20 + 10 × 1) / 10 = 3 tokens.
    expect(shape(step()!)).toEqual([[a.id, 1, true], [b.id, 8, true], [c.id, 3, false]]);
  });

  it('under a long queue, batches more: a deferred prompt\'s extra step would delay everyone behind it', () => {
    const { sched, step } = setup({ fixedMs: 20, perTokenMs: 10 });
    const seqs = Array.from({ length: 10 }, (_, i) => seq(12, i + 1));
    for (const s of seqs) sched.add(s);
    // Second: (20 × 9) / 10 = 18 ≥ 12 tokens, joins whole; third: (20 × 8) / (2 × 10) = 8, a partial chunk, then the step is full.
    expect(shape(step()!)).toEqual([[seqs[0].id, 12, true], [seqs[1].id, 12, true], [seqs[2].id, 8, false]]);
  });

  it('on a device whose fixed cost dominates (a GPU), batches the waiting prompts as before', () => {
    const { sched, step } = setup({ fixedMs: 8, perTokenMs: 0.01 });
    const [a, b, c] = [seq(12, 1), seq(12, 2), seq(12, 3)];
    for (const s of [a, b, c]) sched.add(s);
    expect(shape(step()!)).toEqual([[a.id, 12, true], [b.id, 12, true], [c.id, 12, true]]);
  });

  it('packs to the budget before any step was observed, and when turned off', () => {
    for (const [cost, on] of [[null, true], [{ fixedMs: 20, perTokenMs: 10 }, false]] as const) {
      const { sched, step } = setup(cost, on);
      const [a, b] = [seq(12, 1), seq(12, 2)];
      for (const s of [a, b]) sched.add(s);
      expect(shape(step()!)).toEqual([[a.id, 12, true], [b.id, 12, true]]);
    }
  });

  it('changes no output, and serves every prompt (the first waiting one always gets a step)', () => {
    const { sched, step } = setup({ fixedMs: 5, perTokenMs: 10 });
    const seqs = Array.from({ length: 8 }, (_, i) => seq(6 + i * 5, i + 1, 5));
    for (const s of seqs) sched.add(s);
    let steps = 0;
    while (sched.hasWork && steps++ < 500) step();
    expect(sched.hasWork).toBe(false);
    for (const s of seqs) expect(s.generated).toEqual(runAlone([...s.promptIds], 5, 128).generated);
  });
});
