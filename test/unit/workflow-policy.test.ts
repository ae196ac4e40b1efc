import { describe, expect, it } from 'vitest';
import { HashPrefixCache, KvRetention, PagePool } from '../../src/kv/index.js';
import { Sequence, fcfs } from '../../src/scheduler/index.js';
import { runAlone } from '../helpers/fake-model.js';
import { call, fakeScheduler, PAGE, tokens } from '../helpers/fake-scheduler.js';
import { rng } from '../helpers/random.js';




describe('workflow policy: order', () => {
  it('runs the workflow with the least attained service first, then by arrival', () => {
    const { sched, workflow, drain } = fakeScheduler({ pages: 64 });
    sched.add(call(tokens(20, 1), 4, 'big'));
    drain();
    expect(workflow.workflow('big')!.service).toBe(20 + 3); // 20 prompt tokens, then 3 decode tokens (the 4th is sampled, never computed)
    const bigNext = call(tokens(8, 2), 2, 'big');
    const small = call(tokens(8, 3), 2, 'small');
    const anonymous = call(tokens(8, 4), 2, null);
    sched.add(bigNext);
    sched.add(small);
    sched.add(anonymous);
    expect(workflow.order([bigNext, small, anonymous])).toEqual([small, anonymous, bigNext]);
    expect(fcfs.order([bigNext, small, anonymous])).toEqual([bigNext, small, anonymous]);
  });

  it('ranks by service level (doubling from the quantum); within a level the cached prefix, then arrival', () => {
    const { sched, workflow, drain } = fakeScheduler({ pages: 64, workflow: { serviceQuantumTokens: 16 } });
    const shared = tokens(12, 7);
    sched.add(call([...shared, 1], 1, 'mid')); // 13 tokens computed: level 0 (< 16)
    sched.add(call(tokens(40, 2), 1, 'heavy')); // 40: level 1 (16 .. 47)
    drain();
    const heavy = call(tokens(8, 3), 1, 'heavy');
    const fresh = call(tokens(8, 4), 1, 'fresh'); // 0 tokens: level 0, arrives before mid's call
    const mid = call([...shared, 2, 3], 1, 'mid'); // level 0 with 3 cached pages
    for (const s of [heavy, fresh, mid]) sched.add(s);
    expect([heavy, fresh, mid].map((s) => workflow.levelOf(s))).toEqual([1, 0, 0]);
    expect(workflow.order([heavy, fresh, mid])).toEqual([mid, fresh, heavy]);
  });

  it('puts a lower priority value first, whatever the service', () => {
    const { sched, workflow, drain } = fakeScheduler({ pages: 64 });
    sched.add(call(tokens(20, 1), 4, 'big'));
    drain();
    const urgent = call(tokens(8, 2), 2, 'big', null, -1);
    const small = call(tokens(8, 3), 2, 'small');
    const late = call(tokens(8, 5), 2, 'other', null, 5);
    for (const s of [late, small, urgent]) sched.add(s);
    expect(workflow.order([late, small, urgent])).toEqual([urgent, small, late]);
  });

  it('serves a request that waited past the starvation bound next', () => {
    const { sched, workflow, clock, drain } = fakeScheduler({ pages: 64, workflow: { starvationMs: 1000 } });
    sched.add(call(tokens(20, 1), 4, 'big'));
    drain();
    const old = call(tokens(8, 2), 2, 'big');
    sched.add(old);
    clock.now = 600;
    const fresh = call(tokens(8, 3), 2, 'small');
    sched.add(fresh);
    expect(workflow.order([old, fresh])).toEqual([fresh, old]);
    clock.now = 1001; // old has waited 1001 ms, fresh 401 ms
    expect(workflow.order([old, fresh])).toEqual([old, fresh]);
    expect(sched.schedule()!.seqs.map((s) => s.seq)).toEqual([old, fresh]);
  });

  it('among equal ranks, starts the request whose prefix is cached first', () => {
    const { sched, workflow, drain } = fakeScheduler({ pages: 64 });
    const shared = tokens(12, 7);
    sched.add(call([...shared, 1, 2], 2, null));
    drain();
    const cold = call(tokens(14, 8), 2, 'a');
    const warm = call([...shared, 3, 4], 2, 'b');
    sched.add(cold);
    sched.add(warm);
    expect(workflow.order([cold, warm])).toEqual([warm, cold]);
  });
});

describe('workflow policy: admission', () => {
  for (const admission of [true, false]) {
    it(`${admission ? 'holds' : 'with admission off, does not hold'} a new workflow whose context does not fit beside the live ones${admission ? ', until the starvation bound' : ''}`, () => {
      const { sched, pool, clock, step, drain } = fakeScheduler({ pages: 12, workflow: { starvationMs: 1000, admission } });
      sched.add(call(tokens(16, 1), 2, 'a', 'x'));
      drain();
      expect(pool.retainedPages).toBe(4);
      const running = call(tokens(20, 2), 12, 'a', 'y'); // 'a' is live: it starts
      sched.add(running);
      step();
      expect(running.status).toBe('running');
      const newcomer = call(tokens(12, 3), 2, 'b');
      sched.add(newcomer);
      step();
      // 6 pages used by 'a' + 4 kept for it + 3 for b > 12.
      expect(newcomer.status).toBe(admission ? 'waiting' : 'running');
      if (!admission) return;
      step();
      expect(newcomer.status).toBe('waiting');
      clock.now = 1001;
      step();
      expect(newcomer.status).not.toBe('waiting');
      drain();
      expect(newcomer.generated.length).toBe(2);
    });
  }

  it('starts a held call when nothing runs (never idle)', () => {
    const { sched, pool, drain } = fakeScheduler({ pages: 6 });
    sched.add(call(tokens(16, 1), 2, 'a'));
    drain();
    expect(pool.retainedPages).toBe(4);
    const b = call(tokens(12, 3), 2, 'b');
    sched.add(b);
    drain();
    expect(b.generated.length).toBe(2);
  });
});

describe('workflow policy: preemption', () => {
  it('preempts a call of the workflow with the most attained service', () => {
    // 8 pages of 4 tokens; three calls of 8-token prompts each need 3 pages once they decode past 12 tokens.
    const { sched, workflow, step } = fakeScheduler({ pages: 8, maxBatchTokens: 64 });
    const a = call(tokens(8, 1), 12, 'heavy');
    const b = call(tokens(8, 2), 12, 'light');
    const c = call(tokens(8, 3), 12, 'heavy');
    for (const s of [a, b, c]) sched.add(s);
    const preempted: Sequence[] = [];
    while (!preempted.length && sched.hasWork) preempted.push(...(step()?.preempted ?? []));
    expect(workflow.workflow('heavy')!.service).toBeGreaterThan(workflow.workflow('light')!.service);
    expect(preempted.length).toBeGreaterThan(0);
    for (const v of preempted) expect(v.workflowId).toBe('heavy');
    expect(b.preemptions).toBe(0);
  });

  it('picks the victim by service, then the newest call', () => {
    const { sched, workflow, drain } = fakeScheduler({ pages: 64 });
    sched.add(call(tokens(20, 1), 2, 'served'));
    drain();
    const x = call(tokens(4, 2), 2, 'fresh');
    const y = call(tokens(4, 3), 2, 'served');
    const z = call(tokens(4, 4), 2, 'fresh');
    for (const s of [x, y, z]) sched.add(s);
    expect(workflow.pickVictim([x, y, z])).toBe(y);
    expect(workflow.pickVictim([x, z])).toBe(z);
  });
});

describe('workflow policy: KV kept across calls', () => {
  it('pins a finished call\'s pages for the TTL: plain cached pages are evicted first', () => {
    const { sched, pool, clock, workflow, drain, kv } = fakeScheduler({ pages: 12, workflow: { retentionTtlMs: 5000 } });
    const history = tokens(16, 1);
    const first = call(history, 2, 'w', 'planner');
    sched.add(first);
    drain();
    const kept = pool.retainedPages;
    expect(kept).toBe(4); // 16 prompt tokens + 1 computed generated token: 4 full pages hashed
    expect(workflow.retainedPages('w')).toBe(4);
    expect(workflow.retainedPages('w', 'planner')).toBe(4);
    // An unrelated call leaves 4 plain cached pages; a third call needs 8 pages: the plain ones go first.
    sched.add(call(tokens(16, 2), 2, null));
    drain();
    expect(pool.cachedPages).toBe(8);
    sched.add(call(tokens(28, 3), 4, null));
    drain();
    expect(pool.retainedPages).toBe(4);
    // The agent's next call (its history extended by the answer and a tool result) finds all of it.
    const next = call([...history, ...first.generated, 900, 901, 902], 2, 'w', 'planner');
    sched.add(next);
    drain();
    expect(next.cachedTokens).toBe(16);
    expect(kv.stats.hitTokens).toBeGreaterThanOrEqual(16);
    // After the TTL the pins lapse at the next schedule().
    clock.now = 5000 + 1;
    workflow.tick(clock.now);
    expect(pool.retainedPages).toBe(0);
    expect(pool.cachedPages).toBeGreaterThan(0);
  });

  it('demotes the superseded tail when the agent\'s next call extends its context', () => {
    const { sched, pool, model, drain } = fakeScheduler({ pages: 32, workflow: { retentionTtlMs: 5000 } });
    const history = tokens(16, 1);
    sched.add(call(history, 9, 'w', 'coder'));
    drain();
    // 16 + 8 computed tokens = 6 full pages pinned.
    expect(pool.retainedPages).toBe(6);
    // The next call keeps the first 12 tokens and rewrites the rest: 3 pages shared, 3 superseded.
    const next = call([...history.slice(0, 12), 500, 501, 502, 503, 504], 1, 'w', 'coder');
    sched.add(next);
    const s = sched.schedule()!;
    expect(next.cachedTokens).toBe(12);
    // Started: the 3 shared pages are referenced, the other 3 are plain cached (demoted), none pinned.
    expect(pool.retainedPages).toBe(0);
    expect(pool.cachedPages).toBe(3);
    sched.commit(s, model.run(s.batch, s.kvOps));
    sched.checkInvariants();
  });

  it('pins of other agents survive; end() and the idle timeout release them', () => {
    const { sched, pool, clock, workflow, drain } = fakeScheduler({ pages: 32, workflow: { retentionTtlMs: 60_000, idleTimeoutMs: 10_000 } });
    sched.add(call(tokens(8, 1), 1, 'w', 'a'));
    sched.add(call(tokens(8, 2), 1, 'w', 'b'));
    sched.add(call(tokens(8, 3), 1, 'v', 'a'));
    drain();
    expect(workflow.retainedPages('w', 'a')).toBe(2);
    expect(workflow.retainedPages('w')).toBe(4);
    expect(pool.retainedPages).toBe(6);
    const ended: string[] = [];
    workflow.onEnded = (id) => ended.push(id);
    expect(workflow.end('w')).toBe(true);
    expect(workflow.end('w')).toBe(false);
    expect(pool.retainedPages).toBe(2);
    clock.now = 10_000;
    workflow.tick(clock.now);
    expect(pool.retainedPages).toBe(0);
    expect(ended).toEqual(['w', 'v']);
    expect(workflow.openWorkflows()).toEqual([]);
  });

  it('keeps the pages of a call aborted mid-decode (a stop string), but not of a call without a workflow', () => {
    const { sched, pool, step, drain } = fakeScheduler({ pages: 32 });
    const named = call(tokens(12, 1), 20, 'w', 'a');
    const anonymous = call(tokens(12, 2), 20, null);
    sched.add(named);
    sched.add(anonymous);
    for (let i = 0; i < 6; i++) step();
    sched.abort(named.id);
    sched.abort(anonymous.id);
    drain();
    expect(named.finishReason).toBe('abort');
    expect(pool.retainedPages).toBe(4); // 12 prompt + 5 decoded tokens computed: 4 full pages
    expect(pool.cachedPages).toBe(8);
  });

  it('a pin on a page evicted and reused is ignored', () => {
    const pool = new PagePool(2);
    const cache = new HashPrefixCache(pool, PAGE, 'fake');
    const [p] = pool.allocate(1)!;
    cache.insert(p, tokens(4, 1), '', [], 0);
    const retention = new KvRetention(pool);
    retention.retain('k', [p], 100);
    pool.release([p]);
    expect(pool.retainedPages).toBe(1);
    expect(cache.evict(1)).toBe(1);
    expect(pool.freePages).toBe(2);
    const again = pool.allocate(2)!;
    expect(again).toContain(p);
    cache.insert(p, tokens(4, 2), '', [], 0);
    const epoch = pool.pin(p);
    expect(retention.pagesOf('k')).toBe(0);
    retention.release('k'); // must not drop the new pin
    expect(pool.pinCount(p)).toBe(1);
    pool.unpin(p, epoch);
    pool.release(again);
    pool.checkInvariants([], true);
  });
});

describe('workflow policy: outputs', () => {
  it('generates the same tokens as fcfs on a random agentic workload under page pressure', () => {
    const r = rng(13);
    const workload = Array.from({ length: 30 }, (_, i) => ({
      prompt: tokens(4 + Math.floor(r() * 30), 1 + Math.floor(r() * 5)).concat([i]),
      maxTokens: 1 + Math.floor(r() * 12),
      workflow: r() < 0.2 ? null : `w${Math.floor(r() * 5)}`,
      agent: `a${Math.floor(r() * 3)}`,
      priority: r() < 0.1 ? -1 : 0,
      arriveAtStep: Math.floor(r() * 40),
    }));
    const outputs = (policy: 'fcfs' | 'workflow') => {
      const { sched, step, clock } = fakeScheduler({ pages: 14, maxBatchTokens: 16, policy, workflow: { starvationMs: 50 } });
      const seqs = workload.map((w, i) => new Sequence({ id: 10_000 + i, promptIds: w.prompt, maxTokens: w.maxTokens, workflowId: w.workflow, agentId: w.agent, priority: w.priority }));
      let preemptions = 0;
      for (let t = 0; sched.hasWork || t <= 40; t++) {
        workload.forEach((w, i) => w.arriveAtStep === t && sched.add(seqs[i]));
        clock.now += 10;
        preemptions += step()?.preempted.length ?? 0;
      }
      return { generated: seqs.map((s) => s.generated), preemptions };
    };
    const a = outputs('fcfs');
    const b = outputs('workflow');
    expect(b.generated).toEqual(a.generated);
    expect(a.generated).toEqual(workload.map((w) => runAlone(w.prompt, w.maxTokens, 256).generated));
    expect(a.preemptions + b.preemptions).toBeGreaterThan(0);
  });
});
