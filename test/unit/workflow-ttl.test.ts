// The workflow policy's retention TTL: adaptive by default (a margin over a high percentile of the
// measured gaps between a call's finish and its agent's next call), fixed when given in
// milliseconds. Fake model, fake clock.
import { describe, expect, it } from 'vitest';
import { HashPrefixCache, KvManager, PagePool } from '../../src/kv/index.js';
import { ADAPTIVE_TTL_DEFAULTS, GapWindow, RetentionTtl, WorkflowPolicy } from '../../src/scheduler/index.js';
import { call, fakeScheduler, PAGE, tokens } from '../helpers/fake-scheduler.js';

type Env = ReturnType<typeof fakeScheduler>;
/** The policy tests follow a TTL from 3 gaps (the default needs 8) to keep the call sequences short. */
const FEW = { minGaps: 3 };

let base = 1;
/** Agent `agent` of `workflowId` makes a call, then one more after each gap (ms); returns the last call. */
function agentCalls(env: Env, workflowId: string, agent: string, gapsMs: readonly number[]) {
  let last = call(tokens(8, base++), 1, workflowId, agent);
  env.sched.add(last);
  env.drain();
  for (const gap of gapsMs) {
    env.clock.now += gap;
    last = call(tokens(8, base++), 1, workflowId, agent);
    env.sched.add(last);
    env.drain();
  }
  return last;
}

describe('RetentionTtl', () => {
  it('is margin × the percentile of the recent gaps, within floor and cap; the fallback before minGaps', () => {
    const t = new RetentionTtl(null, { percentile: 90, margin: 2, floorMs: 100, capMs: 5000, window: 10, minGaps: 3, fallbackMs: 777 });
    expect([t.adaptive, t.currentMs(), t.source()]).toEqual([true, 777, 'fallback']);
    t.observe(10);
    t.observe(20);
    expect(t.currentMs()).toBe(777); // 2 gaps < minGaps
    t.observe(30);
    expect([t.currentMs(), t.source()]).toEqual([100, 'global']); // 2 × 30 is below the floor
    for (let i = 1; i <= 10; i++) t.observe(i * 100); // the window keeps these 10: p90 is 900
    expect(t.currentMs()).toBe(1800);
    for (let i = 0; i < 10; i++) t.observe(4000);
    expect(t.currentMs()).toBe(5000); // 8000 capped
  });

  it('a workflow with minGaps gaps of its own follows them, else the global ones', () => {
    const t = new RetentionTtl(null, { margin: 1, floorMs: 0, minGaps: 2 });
    const own = t.newWindow();
    t.observe(5000);
    t.observe(5000);
    t.observe(100, own);
    expect([t.currentMs(own), t.source(own)]).toEqual([5000, 'global']);
    t.observe(200, own);
    expect([t.currentMs(own), t.source(own)]).toEqual([200, 'workflow']);
    expect(t.currentMs()).toBe(5000);
  });

  it('GapWindow: nearest-rank percentiles over the last `size` gaps, bad values ignored', () => {
    const w = new GapWindow(4);
    expect(w.percentile(90)).toBeNaN();
    for (const v of [1, 2, 3, 4, 5, -1, NaN, Infinity]) w.add(v);
    expect(w.count).toBe(4);
    expect([w.percentile(0), w.percentile(50), w.percentile(90), w.percentile(100)]).toEqual([2, 3, 5, 5]);
  });

  it('a fixed TTL ignores the gaps; bad settings are refused', () => {
    const t = new RetentionTtl(1234);
    t.observe(1e6);
    expect([t.currentMs(), t.source(), t.adaptive]).toEqual([1234, 'fixed', false]);
    expect(() => new RetentionTtl(-1)).toThrow(/retentionTtlMs/);
    expect(() => new RetentionTtl(null, { margin: 0 })).toThrow(/margin/);
    expect(() => new RetentionTtl(null, { percentile: 101 })).toThrow(/percentile/);
    expect(() => new RetentionTtl(null, { floorMs: 10, capMs: 5 })).toThrow(/floorMs <= capMs/);
    expect(() => new RetentionTtl(null, { window: 4, minGaps: 5 })).toThrow(/minGaps/);
    const pool = new PagePool(4);
    const kv = new KvManager(pool, PAGE, new HashPrefixCache(pool, PAGE, 'fake'));
    expect(() => new WorkflowPolicy({ kv, retentionTtlMs: 'long' as never })).toThrow(/retentionTtlMs/);
    const byDefault = new WorkflowPolicy({ kv }).ttl;
    expect([byDefault.adaptive, byDefault.minGaps, byDefault.percentile, byDefault.margin, byDefault.floorMs, byDefault.capMs, byDefault.fallbackMs]).toEqual([true, 8, 90, 1.5, 1000, 600_000, 10_000]);
    expect(ADAPTIVE_TTL_DEFAULTS.minGaps).toBe(8);
    expect(new WorkflowPolicy({ kv, retentionTtlMs: 5000 }).retentionTtlMs()).toBe(5000);
  });
});

describe('workflow policy: adaptive retention TTL', () => {
  it('keeps the 10 s fallback until 8 gaps are measured (the default)', () => {
    const env = fakeScheduler({ pages: 64 });
    agentCalls(env, 'w', 'a', [500, 500, 500, 500, 500, 500, 500]);
    expect([env.workflow.retentionTtlMs('w'), env.workflow.retentionTtlSource('w')]).toEqual([10_000, 'fallback']);
    env.clock.now += 500;
    sendNext(env, 'w', 'a');
    expect([env.workflow.retentionTtlMs('w'), env.workflow.retentionTtlSource('w')]).toEqual([1000, 'workflow']); // 750 ms: the floor
  });

  it('follows the measured gaps between an agent\'s calls; the pins lapse at finish + TTL', () => {
    const env = fakeScheduler({ pages: 64, workflow: { adaptiveRetention: FEW } });
    const { workflow, clock, pool } = env;
    expect([workflow.retentionTtlMs(), workflow.retentionTtlSource()]).toEqual([10_000, 'fallback']);
    agentCalls(env, 'w', 'a', [1000, 2000]);
    expect(workflow.retentionTtlMs('w')).toBe(10_000); // 2 gaps: still the fallback
    agentCalls(env, 'w', 'b', []);
    clock.now += 3000;
    sendNext(env, 'w', 'a'); // the third gap: p90 of 1000, 2000, 3000 is 3000
    expect([workflow.retentionTtlMs('w'), workflow.retentionTtlSource('w')]).toEqual([4500, 'workflow']);
    // That call finished now with the new TTL: its pins lapse 4500 ms later, not 10 000.
    const finished = clock.now;
    workflow.tick(finished + 4499);
    expect(workflow.retainedPages('w', 'a')).toBe(2);
    workflow.tick(finished + 4500);
    expect(workflow.retainedPages('w', 'a')).toBe(0);
    expect(pool.cachedPages).toBeGreaterThan(0); // back to plain LRU, not freed
  });

  it('a workflow with its own gaps uses them over the global ones; floor and cap hold', () => {
    const env = fakeScheduler({ pages: 64, workflow: { adaptiveRetention: { ...FEW, capMs: 40_000 } } });
    const { workflow } = env;
    agentCalls(env, 'fast', 'a', [100, 100, 100]);
    expect(workflow.retentionTtlMs('fast')).toBe(1000); // 150 ms: the 1 s floor
    agentCalls(env, 'slow', 'a', [20_000, 20_000, 20_000]);
    expect(workflow.retentionTtlMs('slow')).toBe(30_000);
    expect(workflow.retentionTtlSource('fast')).toBe('workflow'); // idle-ended meanwhile: its gaps are kept
    // A workflow without gaps of its own (and the global TTL) follows all six: p90 is 20 000.
    agentCalls(env, 'new', 'a', []);
    expect([workflow.retentionTtlMs('new'), workflow.retentionTtlSource('new')]).toEqual([30_000, 'global']);
    agentCalls(env, 'slower', 'a', [60_000, 60_000, 60_000]);
    expect(workflow.retentionTtlMs('slower')).toBe(40_000); // 90 000 capped
  });

  it('an explicit retentionTtlMs is fixed whatever the gaps; 0 keeps nothing', () => {
    const fixed = fakeScheduler({ pages: 64, workflow: { retentionTtlMs: 2000 } });
    agentCalls(fixed, 'w', 'a', [20_000, 20_000, 20_000]);
    expect([fixed.workflow.retentionTtlMs('w'), fixed.workflow.retentionTtlSource('w')]).toEqual([2000, 'fixed']);
    expect(fixed.workflow.retainedPages('w')).toBe(2);
    fixed.workflow.tick(fixed.clock.now + 2000);
    expect(fixed.workflow.retainedPages('w')).toBe(0);
    const none = fakeScheduler({ pages: 64, workflow: { retentionTtlMs: 0 } });
    agentCalls(none, 'w', 'a', [1000, 1000, 1000]);
    expect(none.pool.retainedPages).toBe(0);
    expect(none.workflow.workflow('w')!.gapsSeen).toBe(3);
  });

  it('still demotes the superseded tail when the agent\'s next call extends its context', () => {
    const { sched, pool, model, clock, workflow, drain } = fakeScheduler({ pages: 32 });
    const history = tokens(16, 1);
    sched.add(call(history, 9, 'w', 'coder'));
    drain();
    expect(pool.retainedPages).toBe(6);
    clock.now = 500;
    const next = call([...history.slice(0, 12), 500, 501, 502, 503, 504], 1, 'w', 'coder');
    sched.add(next);
    const s = sched.schedule()!;
    expect(next.cachedTokens).toBe(12);
    expect([pool.retainedPages, pool.cachedPages]).toEqual([0, 3]);
    sched.commit(s, model.run(s.batch, s.kvOps));
    sched.checkInvariants();
    expect(workflow.workflow('w')!.gapsSeen).toBe(1);
  });

  it('the default idle timeout waits for the pins to lapse; an explicit one is kept as given', () => {
    const env = fakeScheduler({ pages: 64, workflow: { adaptiveRetention: FEW } });
    agentCalls(env, 'w', 'a', [100_000, 100_000, 100_000]); // TTL 150 s, above the 60 s idle timeout
    const finished = env.clock.now;
    expect(env.workflow.retentionTtlMs('w')).toBe(150_000);
    env.workflow.tick(finished + 60_000);
    expect([env.workflow.openWorkflows(), env.workflow.retainedPages('w')]).toEqual([['w'], 2]);
    env.workflow.tick(finished + 150_000);
    expect([env.workflow.openWorkflows(), env.pool.retainedPages]).toEqual([[], 0]);

    const given = fakeScheduler({ pages: 64, workflow: { idleTimeoutMs: 60_000, adaptiveRetention: FEW } });
    agentCalls(given, 'w', 'a', [100_000, 100_000, 100_000]);
    given.workflow.tick(given.clock.now + 60_000);
    expect([given.workflow.openWorkflows(), given.pool.retainedPages]).toEqual([[], 0]);
  });

  it('measures the gap of an agent whose workflow went idle meanwhile, so gaps past the idle timeout are learnt', () => {
    const env = fakeScheduler({ pages: 64, workflow: { idleTimeoutMs: 5000, adaptiveRetention: FEW } });
    agentCalls(env, 'w', 'a', []);
    for (let i = 0; i < 3; i++) {
      env.workflow.tick(env.clock.now + 5000); // idle: the workflow ends (its pins with it)
      expect(env.workflow.openWorkflows()).toEqual([]);
      env.clock.now += 30_000;
      sendNext(env, 'w', 'a');
    }
    expect(env.workflow.workflow('w')!.gaps.count).toBe(3);
    expect([env.workflow.retentionTtlMs('w'), env.workflow.retentionTtlSource('w')]).toEqual([45_000, 'workflow']);
    // end() forgets them: the workflow comes back new.
    env.workflow.end('w');
    agentCalls(env, 'w', 'a', []);
    expect([env.workflow.workflow('w')!.gaps.count, env.workflow.retentionTtlSource('w')]).toEqual([0, 'global']);
  });
});

function sendNext(env: Env, workflowId: string, agent: string) {
  env.sched.add(call(tokens(8, base++), 1, workflowId, agent));
  env.drain();
}

describe('workflow policy: admission beside long-kept pages', () => {
  it('keeps room for a workflow\'s kept pages only within the starvation bound of its last activity', () => {
    const { sched, clock, workflow, step } = fakeScheduler({ pages: 16, workflow: { starvationMs: 1000, retentionTtlMs: 600_000 } });
    sched.add(call(tokens(32, 1), 1, 'x', 'a'));
    while (sched.hasWork) step();
    expect(workflow.retainedPages('x')).toBe(8);
    const running = call(tokens(8, 2), 40, null);
    sched.add(running);
    step();
    clock.now = 900;
    const y = call(tokens(28, 3), 1, 'y', 'a'); // 7 pages: 8 kept for x + 3 running + 7 > 16
    sched.add(y);
    step();
    expect(y.status).toBe('waiting');
    clock.now = 1001; // x idle past the bound (y has waited only 101 ms): y starts, x keeps what is left
    step();
    expect(y.status).not.toBe('waiting');
    expect(workflow.retainedPages('x')).toBeGreaterThan(0);
    expect(workflow.starvedStarts).toBe(0);
  });
});
