// The workflow policy's starvation bound: adaptive by default (a multiple of the measured queue
// time), fixed when given in milliseconds. Fake model, fake clock.
import { describe, expect, it } from 'vitest';
import { HashPrefixCache, KvManager, PagePool } from '../../src/kv/index.js';
import { StarvationBound, WorkflowPolicy } from '../../src/scheduler/index.js';
import { call, fakeScheduler, PAGE, tokens } from '../helpers/fake-scheduler.js';

describe('StarvationBound', () => {
  it('is factor × the mean queue time of the recent starts, within floor and cap', () => {
    const b = new StarvationBound(null, { factor: 2, floorMs: 100, capMs: 5000, window: 3 });
    expect(b.adaptive).toBe(true);
    expect(b.currentMs()).toBe(100); // nothing measured: the floor
    b.observe(10);
    expect(b.currentMs()).toBe(100); // 2 × 10 is below the floor
    for (let i = 0; i < 3; i++) b.observe(1000);
    expect(b.meanWaitMs).toBe(1000); // the window holds the last 3 only
    expect(b.currentMs()).toBe(2000);
    for (let i = 0; i < 3; i++) b.observe(4000);
    expect(b.currentMs()).toBe(5000); // 8000 capped
  });

  it('counts the calls still queued, so it follows a queue as it builds', () => {
    const b = new StarvationBound(null, { factor: 2, floorMs: 0, window: 4 });
    b.observe(100);
    b.observe(300);
    expect(b.currentMs()).toBe(400);
    expect(b.currentMs([800, 1600])).toBe(2 * (100 + 300 + 800 + 1600) / 4);
  });

  it('a fixed bound ignores what is measured; bad settings are refused', () => {
    const b = new StarvationBound(1234);
    b.observe(1e6);
    expect(b.currentMs([1e6])).toBe(1234);
    expect(() => new StarvationBound(-1)).toThrow(/starvationMs/);
    expect(() => new StarvationBound(null, { factor: 0 })).toThrow(/factor/);
    expect(() => new StarvationBound(null, { floorMs: 10, capMs: 5 })).toThrow(/floorMs <= capMs/);
    const pool = new PagePool(4);
    const kv = new KvManager(pool, PAGE, new HashPrefixCache(pool, PAGE, 'fake'));
    expect(() => new WorkflowPolicy({ kv, starvationMs: 'soon' as never })).toThrow(/starvationMs/);
    expect(new WorkflowPolicy({ kv }).starvation.adaptive).toBe(true);
    expect(new WorkflowPolicy({ kv, starvationMs: 5000 }).starvation.currentMs()).toBe(5000);
  });
});

describe('workflow policy: adaptive starvation bound', () => {
  /** Four calls that all queue 1000 ms, then run: the measured mean queue time is 1000 ms. */
  function afterLongQueue(workflowOptions: Parameters<typeof fakeScheduler>[0]['workflow']) {
    const env = fakeScheduler({ pages: 64, workflow: workflowOptions });
    env.sched.add(call(tokens(20, 1), 4, 'heavy'));
    for (const [i, w] of ['x', 'y', 'z'].entries()) env.sched.add(call(tokens(8, 2 + i), 1, w));
    env.clock.now = 1000;
    env.drain();
    return env;
  }

  it('follows the measured queueing: a call that waited longer than a fixed bound is not starved yet', () => {
    const { sched, clock, workflow } = afterLongQueue({ adaptiveStarvation: { factor: 2, floorMs: 100 } });
    expect(workflow.starvedStarts).toBe(0);
    expect(workflow.starvationBoundMs()).toBe(2000);
    const old = call(tokens(8, 7), 1, 'heavy');
    sched.add(old);
    clock.now = 2500;
    const fresh = call(tokens(8, 8), 1, 'light');
    sched.add(fresh);
    // Waits 4 × 1000 measured, 1500 and 0 queued: the bound is 2 × 5500 / 6.
    expect(workflow.starvationBoundMs()).toBeCloseTo(2 * 5500 / 6, 9);
    expect(workflow.order([old, fresh])).toEqual([fresh, old]); // heavy is more served; 1500 ms is not starved
    clock.now = 3500; // waits 2500 and 1000: bound 2 × 7500 / 6 = 2500, old not past it
    expect(workflow.order([old, fresh])).toEqual([fresh, old]);
    clock.now = 4000; // waits 3000 and 1500: bound 2 × 8500 / 6 ≈ 2833, old is starved and goes first
    expect(workflow.starvationBoundMs()).toBeCloseTo(2 * 8500 / 6, 9);
    expect(workflow.order([old, fresh])).toEqual([old, fresh]);
    expect(sched.schedule()!.seqs.map((s) => s.seq)).toEqual([old, fresh]);
    expect(workflow.starvedStarts).toBe(1);
  });

  it('with a fixed bound, the same call is starved as soon as it passes it', () => {
    const { sched, clock, workflow } = afterLongQueue({ starvationMs: 1000 });
    const old = call(tokens(8, 7), 1, 'heavy');
    sched.add(old);
    clock.now = 2500;
    const fresh = call(tokens(8, 8), 1, 'light');
    sched.add(fresh);
    expect(workflow.order([old, fresh])).toEqual([old, fresh]);
  });

  it('nothing waits forever: under a stream of less-served calls, the most-served one runs once past the bound', () => {
    const { sched, clock, workflow, step } = fakeScheduler({ pages: 64, maxRunningSeqs: 1, workflow: { adaptiveStarvation: { factor: 2, floorMs: 300 } } });
    sched.add(call(tokens(20, 1), 2, 'heavy'));
    step();
    step();
    const heavy = call(tokens(8, 2), 1, 'heavy');
    sched.add(heavy);
    let startedAt = -1;
    for (let i = 0; i < 200 && startedAt < 0; i++) {
      sched.add(call(tokens(4, 100 + i), 1, `light${i}`)); // a new one-call workflow every step, served first by least service
      clock.now += 50;
      const s = step();
      if (s?.seqs.some((e) => e.seq === heavy)) startedAt = clock.now;
    }
    expect(startedAt).toBeGreaterThan(300); // not before the floor
    expect(startedAt).toBeLessThan(1000); // light calls wait ~one step, so the bound stays near the floor
    expect(workflow.starvedStarts).toBe(1);
  });
});
