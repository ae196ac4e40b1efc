// The workflow policy's use of the KV pool: which kept pages go first under pressure (KVFlow:
// what runs latest) and admission of a whole new workflow. Fake model, fake clock.
import { describe, expect, it } from 'vitest';
import { HashPrefixCache, KvRetention, PagePool } from '../../src/kv/index.js';
import { KEPT_PAGE_HOLD_RATIO } from '../../src/scheduler/index.js';
import { runAlone } from '../helpers/fake-model.js';
import { call, fakeScheduler, PAGE, tokens } from '../helpers/fake-scheduler.js';




describe('workflow policy: which kept pages go first', () => {
  it('evicts the kept pages of the most served workflow first, though they are the newest', () => {
    const { sched, pool, workflow, drain } = fakeScheduler({ pages: 8 });
    sched.add(call(tokens(8, 1), 1, 'light', 'a')); // 8 tokens of service, 2 pages kept
    drain();
    sched.add(call(tokens(16, 2), 1, 'heavy', 'a')); // 16 tokens, 4 pages kept (released after light's)
    drain();
    expect([workflow.retainedPages('light'), workflow.retainedPages('heavy')]).toEqual([2, 4]);
    expect(pool.pinnedEvictions).toBe(0);
    // A call with no workflow needs 4 pages: 2 free, 2 by eviction. Oldest-first would take light's.
    sched.add(call(tokens(16, 3), 1, null));
    drain();
    expect([workflow.retainedPages('light'), workflow.retainedPages('heavy')]).toEqual([2, 2]);
    expect(pool.pinnedEvictions).toBe(2); // counted (metrics().workflowPolicy.keptPagesEvicted)
    // heavy lost its tail: its next call still finds its first two pages.
    const next = call(tokens(16, 2), 1, 'heavy', 'a');
    sched.add(next);
    drain();
    expect(next.cachedTokens).toBe(8);
    expect(pool.retainedPages).toBeGreaterThan(0);
  });

  it('within a service level, evicts first the agent that finished last (it comes back from its tool last)', () => {
    const { sched, clock, workflow, drain } = fakeScheduler({ pages: 10, workflow: { serviceQuantumTokens: 1_000_000 } });
    sched.add(call(tokens(12, 1), 1, 'w', 'early'));
    drain();
    clock.now = 100;
    sched.add(call(tokens(12, 2), 1, 'w', 'late'));
    drain();
    expect([workflow.retainedPages('w', 'early'), workflow.retainedPages('w', 'late')]).toEqual([3, 3]);
    clock.now = 200;
    sched.add(call(tokens(28, 3), 1, null)); // 7 pages: 4 free, 3 evicted
    drain();
    expect([workflow.retainedPages('w', 'early'), workflow.retainedPages('w', 'late')]).toEqual([3, 0]);
  });

  it('uses the measured gap between calls: whose return is due latest loses first, not whose call finished last', () => {
    const { sched, clock, workflow, drain } = fakeScheduler({ pages: 10, workflow: { serviceQuantumTokens: 1_000_000 } });
    // Workflow 'tools' came back 1000 ms after its first call: its mean gap is 1000 ms.
    const first = call(tokens(8, 1), 1, 'tools', 'a');
    sched.add(first);
    drain();
    clock.now = 1000;
    sched.add(call([...tokens(8, 1), ...first.generated, 7, 7, 7], 1, 'tools', 'a')); // 12 tokens: 3 pages kept
    drain();
    expect(workflow.workflow('tools')!.meanGapMs).toBe(1000);
    clock.now = 1500;
    sched.add(call(tokens(12, 5), 1, 'quick', 'a')); // finishes at 1500, no gap known: due now; 'tools' is due at 2000
    drain();
    sched.add(call(tokens(28, 6), 1, null)); // 7 pages: 4 free, 3 evicted
    drain();
    expect([workflow.retainedPages('tools'), workflow.retainedPages('quick')]).toEqual([0, 3]);
  });

  it('KvRetention with a rank: a page two keys pin goes only when both rank late; tails before heads', () => {
    const pool = new PagePool(4);
    const cache = new HashPrefixCache(pool, PAGE, 'fake');
    const pages = pool.allocate(4)!;
    const ids = tokens(16, 1);
    const hashes: string[] = []; // filled by the cache as it hashes the chain
    pages.forEach((p, i) => cache.insert(p, ids, '', hashes, i));
    const ranks: Record<string, number[]> = { soon: [0, 10], later: [0, 20] };
    const retention = new KvRetention(pool, (key) => ranks[key]);
    const [head, a, b, c] = pages;
    retention.retain('soon', [head, a], 100);
    retention.retain('later', [head, b, c], 100);
    pool.release(pages);
    const order: number[] = [];
    for (let i = 0; i < 4; i++) {
      const before = pages.filter((p) => pool.state(p) === 'cached');
      cache.evict(1);
      order.push(...before.filter((p) => pool.state(p) === 'free'));
    }
    expect(order).toEqual([c, b, a, head]);
    pool.checkInvariants([], true);
  });
});



describe('workflow policy: the time-to-live covers the tool, not the queue', () => {
  it('keeps an agent\'s pages past the TTL while its next call waits to start', () => {
    const { sched, clock, pool, workflow, drain } = fakeScheduler({ pages: 16, workflow: { retentionTtlMs: 1000 } });
    const history = tokens(16, 1);
    const first = call(history, 1, 'w', 'a');
    sched.add(first);
    drain();
    expect(workflow.retainedPages('w', 'a')).toBe(4);
    clock.now = 500; // back from the tool within the TTL; the call then queues long
    const next = call([...history, ...first.generated, 3, 3, 3], 1, 'w', 'a');
    sched.add(next);
    workflow.tick(5000);
    expect(workflow.retainedPages('w', 'a')).toBe(4);
    clock.now = 5000;
    drain();
    expect(next.cachedTokens).toBe(16);
    // An agent that does not come back within the TTL loses its pins.
    const other = call(tokens(8, 2), 1, 'w', 'b');
    sched.add(other);
    drain();
    workflow.tick(clock.now + 1000);
    expect(workflow.retainedPages('w', 'b')).toBe(0);
    expect(pool.cachedPages).toBeGreaterThan(0);
  });
});

// These count the live contexts as they are (the growth forecast is tested in workflow-forecast.test.ts).
describe('workflow policy: admission of a whole workflow', () => {
  it('holds a new workflow when all its agents\' first calls do not fit beside the live workflows, not just one', () => {
    const { sched, step, drain } = fakeScheduler({ pages: 16, workflow: { starvationMs: 1_000_000, forecastGrowth: false } });
    const live = call(tokens(32, 1), 20, 'x', 'a'); // 9 pages while it decodes
    sched.add(live);
    step();
    const [y1, y2] = [call(tokens(16, 2), 1, 'y', 'a'), call(tokens(16, 3), 1, 'y', 'b')];
    sched.add(y1);
    sched.add(y2);
    step();
    // 9 + 4 fits for one call; 9 + 4 + 4 > 16 for the workflow: both wait.
    expect([y1.status, y2.status]).toEqual(['waiting', 'waiting']);
    drain();
    expect([y1.generated.length, y2.generated.length]).toEqual([1, 1]);
  });

  it('counts the prompt the agents of the new workflow share once', () => {
    const { sched, step } = fakeScheduler({ pages: 16, workflow: { starvationMs: 1_000_000, forecastGrowth: false } });
    sched.add(call(tokens(32, 1), 20, 'x', 'a'));
    step();
    const system = tokens(12, 9);
    const [y1, y2] = [call([...system, 1, 2, 3, 4], 1, 'y', 'a'), call([...system, 5, 6, 7, 8], 1, 'y', 'b')];
    sched.add(y1);
    sched.add(y2);
    step();
    // Counted per agent, 9 + 4 + 4 > 16 would hold them; with the 3 shared pages once, 9 + 5 fits.
    // y1 starts (and finishes: one token); y2 waits a step for the shared pages y1 computes.
    expect(y1.status).toBe('finished');
    step();
    expect(y2.status).toBe('finished');
  });
});

describe('workflow policy: a call of a live workflow waits rather than evict kept pages, where recomputation is the cost', () => {
  const CPU = { fixedMs: 20, perTokenMs: 8 }; // SwiftShader's cost
  const GPU = { fixedMs: 8, perTokenMs: 0.01 };

  function pressed(holdForKeptPages?: boolean | 'auto') {
    const env = fakeScheduler({ pages: 12, workflow: { starvationMs: 1_000_000, holdForKeptPages } });
    env.sched.add(call(tokens(16, 1), 1, 'w', 'a'));
    env.drain(); // 4 pages kept for agent a
    const running = call(tokens(20, 2), 12, 'w', 'b');
    env.sched.add(running);
    env.step(); // b holds 5 pages; 3 free
    const next = call(tokens(12, 3), 1, 'w', 'c'); // needs 4 pages: 3 free, 1 of a's kept ones
    env.sched.add(next);
    return { ...env, running, next };
  }

  it('decides by the device\'s step cost (auto), or as told', () => {
    const { workflow, next, pool } = pressed();
    expect(pool.retainedPages).toBe(4);
    expect(pool.freePages).toBe(3);
    // Recomputing a page of PAGE (4) tokens at 8 ms a token: 32 ms, under KEPT_PAGE_HOLD_RATIO (4) × 20 ms a step: it starts.
    expect(PAGE * CPU.perTokenMs).toBeLessThan(KEPT_PAGE_HOLD_RATIO * CPU.fixedMs);
    expect(workflow.admits(next, CPU)).toBe(true);
    // At 2 ms a step, 32 ms of recomputation is worth 16 steps of waiting: it waits (16-token pages at SwiftShader's 20 ms + 8 ms/token: 128 ms ≥ 80 ms, the same).
    expect(workflow.admits(next, { fixedMs: 2, perTokenMs: 8 })).toBe(false);
    expect(workflow.admits(next, GPU)).toBe(true);
    expect(workflow.admits(next, null)).toBe(true); // no cost learnt yet
    expect(pressed(true).workflow.admits(next, GPU)).toBe(false);
    expect(pressed(false).workflow.admits(next, { fixedMs: 2, perTokenMs: 8 })).toBe(true);
  });

  it('the held call starts once pages are free without evicting, and generates the same tokens', () => {
    const { sched, pool, workflow, step, drain, running, next } = pressed(true);
    step();
    expect(next.status).toBe('waiting');
    expect(workflow.retainedPages('w', 'a')).toBe(4);
    expect(pool.retainedPages).toBe(4);
    drain();
    expect(running.generated.length).toBe(12);
    expect(next.generated).toEqual(runAlone(tokens(12, 3), 1, 256).generated);
    expect(sched.hasWork).toBe(false);
  });
});
