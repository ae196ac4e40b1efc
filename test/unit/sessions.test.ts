// Sessions in the scheduler (SessionRegistry) on the fake model: a session's pages stay referenced
// between requests, a request computes only what its tokens add to the session's context, clones
// compute nothing, destroy frees pages, and pinned pages are bounded (least recently used first).
import { describe, expect, it } from 'vitest';
import { KvManager } from '../../src/kv/kv-manager.js';
import { PagePool } from '../../src/kv/page-pool.js';
import { HashPrefixCache } from '../../src/kv/prefix-cache.js';
import { Scheduler, SessionLimitError, Sequence, type KvSession, type ScheduledStep, type SchedulerOptions } from '../../src/scheduler/index.js';
import { FakeModel, runAlone, VOCAB } from '../helpers/fake-model.js';

const PS = 4;

function setup(pages: number, options: Omit<SchedulerOptions, 'kv' | 'contextLength'> = {}) {
  const pool = new PagePool(pages);
  const kv = new KvManager(pool, PS, new HashPrefixCache(pool, PS, 'fake'));
  const sched = new Scheduler({ kv, contextLength: 256, ...options });
  const model = new FakeModel(PS);
  let computed = 0;
  const steps: ScheduledStep[] = [];
  const step = () => {
    const s = sched.schedule();
    if (!s) return null;
    steps.push(s);
    computed += s.batch.tokenIds.length;
    sched.commit(s, model.run(s.batch, s.kvOps));
    sched.checkInvariants();
    return s;
  };
  const drainAll = () => {
    while (sched.hasWork) step();
  };
  return { pool, kv, sched, step, drainAll, steps, computedTokens: () => computed };
}

const tokens = (n: number, base = 1) => Array.from({ length: n }, (_, i) => (base * 31 + i * 7) % VOCAB);
let nextId = 1;
const seqOn = (session: KvSession | null, promptIds: number[], maxTokens: number) => new Sequence({ id: nextId++, promptIds, maxTokens, session });

describe('sessions in the scheduler', () => {
  it('a request on a session computes only the tokens after its context, and the session then holds prompt and reply', () => {
    const t = setup(64);
    const session = t.sched.sessions.create();
    const first = seqOn(session, tokens(10), 1); // a prefill (max_tokens 0 runs as 1)
    t.sched.add(first);
    t.drainAll();
    expect(t.computedTokens()).toBe(10);
    expect(session.context.tokens).toEqual(tokens(10));
    expect(session.context.numComputed).toBe(10);
    expect(session.pinned).toBe(true);
    // The session's pages are referenced: nothing is cached or evictable.
    expect(t.pool.usedPages).toBe(3);

    const promptIds = [...tokens(10), 500, 501, 502];
    const second = seqOn(session, promptIds, 4);
    t.sched.add(second);
    t.drainAll();
    expect(second.cachedTokens).toBe(10);
    expect(t.computedTokens()).toBe(10 + 3 + 3); // 3 new prompt tokens, then 3 decode steps
    expect(second.generated).toEqual(runAlone(promptIds, 4, 256).generated);
    // The reply's KV stays in the session: all but the last generated token are computed.
    expect(session.context.tokens).toEqual([...promptIds, ...second.generated.slice(0, 3)]);

    // The next turn takes the whole context, reply included: only its new tokens are computed.
    const before = t.computedTokens();
    const third = seqOn(session, [...second.tokens, 600, 601], 2);
    t.sched.add(third);
    t.drainAll();
    expect(third.cachedTokens).toBe(16); // the context `second` left: 13 prompt tokens and 3 of its 4 reply tokens
    expect(t.computedTokens() - before).toBe(3 + 1); // the last reply token, 600 and 601, then one decode
    expect(third.generated).toEqual(runAlone([...second.tokens, 600, 601], 2, 256).generated);
  });

  it('tokens that differ from the session (a template rendering history differently) reuse the common prefix only, with the right output', () => {
    const t = setup(64);
    const session = t.sched.sessions.create();
    t.sched.add(seqOn(session, tokens(14), 1));
    t.drainAll();
    const changed = [...tokens(14)];
    changed[9] = 999;
    changed.push(5, 6);
    const s = seqOn(session, changed, 3);
    t.sched.add(s);
    t.drainAll();
    expect(s.cachedTokens).toBe(9);
    expect(s.generated).toEqual(runAlone(changed, 3, 256).generated);
    expect(session.context.tokens).toEqual([...changed, ...s.generated.slice(0, 2)]);
  });

  it('clone references every page of its parent and computes nothing; both continue independently (copy on write)', () => {
    const t = setup(64);
    const parent = t.sched.sessions.create();
    t.sched.add(seqOn(parent, tokens(10), 1));
    t.drainAll();
    const computed = t.computedTokens();
    const clones = Array.from({ length: 4 }, () => t.sched.sessions.clone(parent.id));
    expect(t.computedTokens()).toBe(computed);
    expect(t.pool.usedPages).toBe(3);
    for (const c of clones) expect(c.context.blockTable).toEqual(parent.context.blockTable);
    t.sched.checkInvariants();

    const runs = clones.map((c, i) => seqOn(c, [...tokens(10), 100 + i], 3));
    runs.forEach((r) => t.sched.add(r));
    const firstStep = t.step()!;
    // All four start in one step, each computing its one new token; the shared partial page is copied per clone.
    expect(firstStep.seqs.map((s) => s.numTokens)).toEqual([1, 1, 1, 1]);
    expect(firstStep.kvOps.length).toBe(4);
    t.drainAll();
    runs.forEach((r, i) => expect(r.generated).toEqual(runAlone([...tokens(10), 100 + i], 3, 256).generated));
    expect(parent.context.tokens).toEqual(tokens(10));
  });

  it('destroy releases the pages: referenced + cached + free = total, nothing referenced once every session is gone', () => {
    const t = setup(32);
    const a = t.sched.sessions.create();
    t.sched.add(seqOn(a, tokens(13), 1));
    t.drainAll();
    const b = t.sched.sessions.clone(a.id);
    expect(t.pool.usedPages).toBe(4);
    expect(t.sched.sessions.destroy(a.id)).toBe(true);
    expect(t.pool.usedPages).toBe(4); // b still holds them
    t.sched.checkInvariants();
    expect(t.sched.sessions.destroy(b.id)).toBe(true);
    expect(t.sched.sessions.destroy(b.id)).toBe(false);
    expect(t.pool.usedPages).toBe(0);
    expect(t.pool.cachedPages + t.pool.freePages).toBe(32);
    expect(t.pool.cachedPages).toBe(3); // its full pages stay in the prefix cache
    t.sched.checkInvariants();
  });

  it('a request aborted before it computed anything leaves the session as it was', () => {
    const t = setup(64);
    const session = t.sched.sessions.create();
    t.sched.add(seqOn(session, tokens(10), 1));
    t.drainAll();
    const pages = [...session.context.blockTable];
    const s = seqOn(session, [...tokens(6), 7, 7, 7, 7, 7], 3);
    t.sched.add(s);
    t.sched.abort(s.id);
    expect(session.context.tokens).toEqual(tokens(10));
    expect(session.context.blockTable).toEqual(pages);
    t.sched.checkInvariants();
  });

  it('past maxSessionPages the least recently used session is unpinned to the prefix cache, and its next request takes its pages from there', () => {
    const t = setup(64, { maxSessionPages: 6 });
    const a = t.sched.sessions.create();
    const b = t.sched.sessions.create();
    t.sched.add(seqOn(a, tokens(12, 1), 1));
    t.drainAll();
    t.sched.add(seqOn(b, tokens(12, 2), 1));
    t.drainAll();
    expect(a.pinned && b.pinned).toBe(true);
    expect(t.sched.sessions.heldPages()).toBe(6);
    const c = t.sched.sessions.create();
    t.sched.add(seqOn(c, tokens(12, 3), 1));
    t.drainAll();
    expect(a.pinned).toBe(false);
    expect(b.pinned && c.pinned).toBe(true);
    expect(t.sched.sessions.unpinned).toBe(1);
    expect(t.pool.cachedPages).toBe(3);
    const next = seqOn(a, [...tokens(12, 1), 9], 2);
    t.sched.add(next);
    t.drainAll();
    expect(next.cachedTokens).toBe(12); // from the prefix cache
    expect(next.generated).toEqual(runAlone([...tokens(12, 1), 9], 2, 256).generated);
  });

  it('when a running request needs pages, idle sessions are unpinned before anything is preempted', () => {
    const t = setup(8, { maxSessionPages: 8 });
    const sessions = Array.from({ length: 3 }, () => t.sched.sessions.create());
    sessions.forEach((s, i) => {
      t.sched.add(seqOn(s, tokens(7, i + 1), 1));
      t.drainAll();
    });
    expect(t.sched.sessions.heldPages()).toBe(6);
    const big = new Sequence({ id: nextId++, promptIds: tokens(20, 9), maxTokens: 8 });
    t.sched.add(big);
    t.drainAll();
    expect(big.finishReason).toBe('length');
    expect(big.generated).toEqual(runAlone(tokens(20, 9), 8, 256).generated);
    expect(big.preemptions).toBe(0);
    expect(sessions.filter((s) => !s.pinned).length).toBeGreaterThanOrEqual(2);
  });

  it('many session requests run in one step, batched with a plain request', () => {
    const t = setup(128, { maxSessionPages: 128 });
    const parent = t.sched.sessions.create();
    t.sched.add(seqOn(parent, tokens(20), 1));
    t.drainAll();
    const clones = Array.from({ length: 8 }, () => t.sched.sessions.clone(parent.id));
    const runs = clones.map((c, i) => seqOn(c, [...tokens(20), 200 + i], 4));
    const plain = new Sequence({ id: nextId++, promptIds: tokens(9, 5), maxTokens: 4 });
    [...runs, plain].forEach((s) => t.sched.add(s));
    const first = t.step()!;
    expect(first.seqs.length).toBe(9);
    expect(first.batch.tokenIds.length).toBe(8 + 9); // one new token per clone, the plain prompt
    t.drainAll();
    runs.forEach((r, i) => expect(r.generated).toEqual(runAlone([...tokens(20), 200 + i], 4, 256).generated));
  });
});

describe('session limits (fake clock)', () => {
  const MIN = 60_000;
  function limited(options: Omit<SchedulerOptions, 'kv' | 'contextLength' | 'clock'>) {
    const clock = { now: 0 };
    return { clock, ...setup(64, { ...options, clock: () => clock.now }) };
  }
  const prefill = (t: ReturnType<typeof limited>, session: KvSession, n: number, base = 1) => {
    t.sched.add(seqOn(session, tokens(n, base), 1));
    t.drainAll();
  };

  it('defaults: 256 sessions, unpinned after 5 idle minutes, never destroyed', () => {
    const t = limited({});
    expect(t.sched.sessions.maxSessions).toBe(256);
    expect(t.sched.sessions.unpinAfterMs).toBe(5 * MIN);
    expect(t.sched.sessions.expireAfterMs).toBe(Infinity);
  });

  it('a session idle for unpinAfterMs is unpinned at the next step; it stays open and its next request takes what the cache kept', () => {
    const t = limited({ sessionUnpinAfterMs: 5 * MIN });
    const idle = t.sched.sessions.create();
    const busy = t.sched.sessions.create();
    prefill(t, idle, 12, 1);
    t.clock.now = 3 * MIN;
    prefill(t, busy, 12, 2);
    t.clock.now = 5 * MIN - 1;
    t.sched.sessions.sweep();
    expect(idle.pinned && busy.pinned).toBe(true);
    t.clock.now = 5 * MIN;
    // The next step (a plain request) checks idleness: `idle` goes, `busy` (used at 3 min) stays.
    t.sched.add(new Sequence({ id: nextId++, promptIds: tokens(3, 7), maxTokens: 1 }));
    t.drainAll();
    expect(idle.pinned).toBe(false);
    expect(busy.pinned).toBe(true);
    expect(t.sched.sessions.get(idle.id)).toBe(idle);
    expect(t.sched.sessions.unpinned).toBe(1);
    expect(t.pool.cachedPages).toBe(3); // its full pages, evictable now
    const next = seqOn(idle, [...tokens(12, 1), 9], 2);
    t.sched.add(next);
    t.drainAll();
    expect(next.cachedTokens).toBe(12);
    expect(next.generated).toEqual(runAlone([...tokens(12, 1), 9], 2, 256).generated);
    expect(idle.pinned).toBe(true);
  });

  it('a session idle for expireAfterMs is destroyed (pages released, gone for lookups); one with a request under way never is', () => {
    const t = limited({ sessionUnpinAfterMs: Infinity, sessionExpireAfterMs: 30 * MIN });
    const stale = t.sched.sessions.create();
    const working = t.sched.sessions.create();
    prefill(t, stale, 12, 1);
    prefill(t, working, 12, 2);
    const long = seqOn(working, [...tokens(12, 2), 5], 50);
    t.sched.add(long);
    t.step();
    t.clock.now = 31 * MIN; // the request on `working` has run for 31 minutes: not idle
    t.step();
    expect(t.sched.sessions.get(stale.id)).toBeUndefined();
    expect(t.sched.sessions.get(working.id)).toBe(working);
    expect(t.sched.sessions.expired).toBe(1);
    expect(t.sched.sessions.size).toBe(1);
    t.drainAll();
    expect(long.generated).toEqual(runAlone([...tokens(12, 2), 5], 50, 256).generated);
    // Idle from the moment its request ended.
    t.clock.now = 31 * MIN + 30 * MIN - 1;
    expect(t.sched.sessions.get(working.id)).toBe(working);
    t.clock.now = 31 * MIN + 30 * MIN;
    expect(t.sched.sessions.info(working.id)).toBeUndefined();
    expect(t.pool.usedPages).toBe(0);
    t.sched.checkInvariants();
  });

  it('a clone and a lookup count as use; expiry is checked on lookups even with no steps', () => {
    const t = limited({ sessionExpireAfterMs: 10 * MIN });
    const a = t.sched.sessions.create();
    prefill(t, a, 8);
    t.clock.now = 9 * MIN;
    const b = t.sched.sessions.clone(a.id); // a is used by the clone
    t.clock.now = 18 * MIN;
    expect(t.sched.sessions.get(a.id)).toBe(a);
    expect(t.sched.sessions.get(b.id)).toBe(b);
    t.clock.now = 19 * MIN;
    expect(t.sched.sessions.get(a.id)).toBeUndefined();
    expect(t.sched.sessions.get(b.id)).toBeUndefined();
    expect(t.sched.sessions.expired).toBe(2);
  });

  it('past maxSessions create and clone throw SessionLimitError; a destroyed or expired session makes room', () => {
    const t = limited({ maxSessions: 2, sessionExpireAfterMs: 10 * MIN });
    const a = t.sched.sessions.create();
    t.sched.sessions.create();
    expect(() => t.sched.sessions.create()).toThrow(SessionLimitError);
    expect(() => t.sched.sessions.clone(a.id)).toThrow(/2 sessions are open, the most allowed/);
    expect(t.sched.sessions.size).toBe(2);
    t.sched.sessions.destroy(a.id);
    const c = t.sched.sessions.create();
    t.clock.now = 10 * MIN;
    expect(t.sched.sessions.create().id).not.toBe(c.id); // both old ones expired first
    expect(t.sched.sessions.size).toBe(1);
  });

  it('rejects limits that make no sense', () => {
    expect(() => setup(8, { maxSessions: 0 })).toThrow(/maxSessions must be a positive integer/);
    expect(() => setup(8, { sessionUnpinAfterMs: 0 })).toThrow(/sessionUnpinAfterMs must be a positive number/);
    expect(() => setup(8, { sessionExpireAfterMs: NaN })).toThrow(/sessionExpireAfterMs/);
  });
});
