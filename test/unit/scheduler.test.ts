import { describe, expect, it } from 'vitest';
import { KvManager } from '../../src/kv/kv-manager.js';
import { PagePool } from '../../src/kv/page-pool.js';
import { Scheduler, Sequence, fcfs, type ScheduledStep, type SchedulerOptions } from '../../src/scheduler/index.js';
import { rng } from '../helpers/random.js';
import { FakeModel, runAlone, VOCAB } from '../helpers/fake-model.js';

function setup(opts: { pages: number; pageSize: number } & Omit<SchedulerOptions, 'kv'>) {
  const pool = new PagePool(opts.pages);
  const kv = new KvManager(pool, opts.pageSize);
  const sched = new Scheduler({ ...opts, kv });
  const model = new FakeModel(opts.pageSize);
  /** One schedule + forward + commit; checks the invariants after it. */
  const step = (): ScheduledStep | null => {
    const s = sched.schedule();
    if (s) sched.commit(s, model.run(s.batch));
    sched.checkInvariants();
    return s;
  };
  return { pool, kv, sched, model, step };
}

const prompt = (n: number, base = 1) => Array.from({ length: n }, (_, i) => (base * 31 + i * 7) % VOCAB);
let nextId = 1;
const seq = (promptIds: number[], maxTokens: number, stopIds?: number[]) => new Sequence({ id: nextId++, promptIds, maxTokens, stopIds });

const summary = (s: ScheduledStep) => s.seqs.map((e) => [e.seq.id, e.numTokens, e.samples]);

describe('Scheduler', () => {
  it('splits a long prompt across steps with exact positions, slots and context lengths', () => {
    const { sched, model, pool } = setup({ pages: 8, pageSize: 4, contextLength: 64, maxBatchTokens: 4 });
    const a = seq(prompt(10), 2);
    sched.add(a);
    const expected = [
      { positions: [0, 1, 2, 3], slots: [0, 1, 2, 3], ctx: 4, sample: [] as number[] },
      { positions: [4, 5, 6, 7], slots: [4, 5, 6, 7], ctx: 8, sample: [] },
      { positions: [8, 9], slots: [8, 9], ctx: 10, sample: [1] },
      { positions: [10], slots: [10], ctx: 11, sample: [0] },
    ];
    for (const e of expected) {
      const s = sched.schedule()!;
      expect(Array.from(s.batch.positions)).toEqual(e.positions);
      expect(Array.from(s.batch.slotMapping)).toEqual(e.slots);
      expect(Array.from(s.batch.tokenIds)).toEqual(a.tokens.slice(e.positions[0], e.positions[0] + e.positions.length));
      expect(Array.from(s.batch.contextLens)).toEqual([e.ctx]);
      expect(Array.from(s.batch.sampleRows)).toEqual(e.sample);
      expect(s.batch.maxBlocksPerSeq).toBe(Math.ceil(e.ctx / 4));
      expect(Array.from(s.batch.seqStarts)).toEqual([0, e.positions.length]);
      sched.commit(s, model.run(s.batch));
      sched.checkInvariants();
    }
    expect(a.status).toBe('finished');
    expect(a.finishReason).toBe('length');
    expect(a.generated).toEqual(runAlone(prompt(10), 2, 64).generated);
    expect(pool.freePages).toBe(8);
    expect(sched.schedule()).toBeNull();
  });

  it('fills the budget with decode tokens first, then prefill chunks in arrival order', () => {
    const { sched, step } = setup({ pages: 64, pageSize: 4, contextLength: 128, maxBatchTokens: 10 });
    const a = seq(prompt(3, 1), 50);
    const b = seq(prompt(3, 2), 50);
    sched.add(a);
    sched.add(b);
    expect(summary(step()!)).toEqual([[a.id, 3, true], [b.id, 3, true]]);
    const c = seq(prompt(20, 3), 50);
    const d = seq(prompt(5, 4), 50);
    sched.add(c);
    sched.add(d);
    // a, b decode (1 each); c takes the remaining 8 of the budget; d waits.
    let s = step()!;
    expect(summary(s)).toEqual([[a.id, 1, true], [b.id, 1, true], [c.id, 8, false]]);
    expect(Array.from(s.batch.positions.slice(2))).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    // c continues its chunk after the decodes (positions 8..15); d still waits.
    s = step()!;
    expect(summary(s)).toEqual([[a.id, 1, true], [b.id, 1, true], [c.id, 8, false]]);
    expect(Array.from(s.batch.positions.slice(2))).toEqual([8, 9, 10, 11, 12, 13, 14, 15]);
    expect(Array.from(s.batch.positions.slice(0, 2))).toEqual([4, 4]);
    // c's last 4 prompt tokens, then d's first 4.
    s = step()!;
    expect(summary(s)).toEqual([[a.id, 1, true], [b.id, 1, true], [c.id, 4, true], [d.id, 4, false]]);
    expect(Array.from(s.batch.sampleRows)).toEqual([0, 1, 5]);
    // Decodes (c now decodes too) before d's last prompt token.
    s = step()!;
    expect(summary(s)).toEqual([[a.id, 1, true], [b.id, 1, true], [c.id, 1, true], [d.id, 1, true]]);
    expect(Array.from(s.batch.positions)).toEqual([6, 6, 20, 4]);
    for (const x of [a, b, c, d]) expect(x.status).toBe('running');
  });

  it('keeps the output of every sequence identical to running it alone (no preemption)', () => {
    const { sched, step } = setup({ pages: 256, pageSize: 4, contextLength: 64, maxBatchTokens: 16 });
    const seqs = Array.from({ length: 6 }, (_, i) => seq(prompt(3 + i * 5, i + 10), 8 + i));
    for (const s of seqs) sched.add(s);
    while (sched.hasWork) step();
    for (const [i, s] of seqs.entries()) expect(s.generated).toEqual(runAlone(prompt(3 + i * 5, i + 10), 8 + i, 64).generated);
  });

  it('preempts the newest running sequence when pages run out and resumes it with the same tokens', () => {
    // 6 pages of 2 tokens; three sequences that each grow to 12 tokens (6 pages).
    const { sched, step, pool } = setup({ pages: 6, pageSize: 2, contextLength: 64, maxBatchTokens: 64 });
    const seqs = [seq(prompt(4, 1), 8), seq(prompt(4, 2), 8), seq(prompt(4, 3), 8)];
    for (const s of seqs) sched.add(s);
    const victims: number[] = [];
    let steps = 0;
    while (sched.hasWork) {
      const s = step()!;
      expect(s).not.toBeNull();
      for (const v of s.preempted) {
        // fcfs: the victim is the newest of the running sequences not yet in this step.
        victims.push(v.id);
        expect(v.status).not.toBe('running');
        expect(s.seqs.some((e) => e.seq === v)).toBe(false);
      }
      expect(++steps).toBeLessThan(200);
    }
    expect(victims.length).toBeGreaterThan(0);
    expect(victims[0]).toBe(seqs[2].id);
    expect(seqs.some((s) => s.preemptions > 0 && s.generated.length > 0)).toBe(true);
    for (const [i, s] of seqs.entries()) {
      expect(s.finishReason).toBe('length');
      expect(s.generated).toEqual(runAlone(prompt(4, i + 1), 8, 64).generated);
    }
    expect(pool.freePages).toBe(6);
  });

  it('re-queues a preempted sequence ahead of newer waiting ones and recomputes its generated tokens', () => {
    const { sched, step } = setup({ pages: 4, pageSize: 2, contextLength: 64, maxBatchTokens: 64 });
    const a = seq(prompt(3, 1), 5);
    const b = seq(prompt(3, 2), 5);
    sched.add(a);
    sched.add(b);
    step(); // prefill: a and b take 2 pages each (slots for positions 0..3)
    step(); // decode position 3: no new page
    let s = step()!; // position 4 needs a third page for both: b is preempted, a decodes
    expect(s.preempted).toEqual([b]);
    expect(summary(s)).toEqual([[a.id, 1, true]]);
    expect(b.status).toBe('preempted');
    expect(b.blockTable).toEqual([]);
    expect(b.numComputed).toBe(0);
    const c = seq(prompt(2, 3), 1);
    sched.add(c);
    expect(sched.waiting.map((x) => x.id)).toEqual([b.id, c.id]);
    // b comes back before c (in the same step, ahead of it, or in an earlier step).
    const firstSeen = new Map<Sequence, number>();
    for (let k = 0; sched.hasWork; k++) {
      for (const [j, e] of step()!.seqs.entries()) if (!firstSeen.has(e.seq)) firstSeen.set(e.seq, k * 1000 + j);
    }
    expect(firstSeen.get(b)!).toBeLessThan(firstSeen.get(c)!);
    expect(b.preemptions).toBe(1);
    expect(b.generated).toEqual(runAlone(prompt(3, 2), 5, 64).generated);
    expect(c.generated).toEqual(runAlone(prompt(2, 3), 1, 64).generated);
  });

  it('respects maxRunningSeqs', () => {
    const { sched, step } = setup({ pages: 256, pageSize: 4, contextLength: 64, maxBatchTokens: 512, maxRunningSeqs: 3 });
    const seqs = Array.from({ length: 10 }, (_, i) => seq(prompt(5, i), 4));
    for (const s of seqs) sched.add(s);
    let maxSeen = 0;
    while (sched.hasWork) {
      const s = step()!;
      expect(s.seqs.length).toBeLessThanOrEqual(3);
      maxSeen = Math.max(maxSeen, sched.running.length);
    }
    expect(maxSeen).toBe(3);
    for (const [i, s] of seqs.entries()) expect(s.generated).toEqual(runAlone(prompt(5, i), 4, 64).generated);
  });

  it('finishes on a stop id (not appended), on maxTokens and at the context limit', () => {
    const { sched, step } = setup({ pages: 64, pageSize: 4, contextLength: 12, maxBatchTokens: 64 });
    const ref = runAlone(prompt(4, 5), 20, 1000);
    const stopAt = ref.generated[3];
    const a = seq(prompt(4, 5), 20, [stopAt]);
    const b = seq(prompt(4, 6), 3);
    const c = seq(prompt(8, 7), 100);
    for (const s of [a, b, c]) sched.add(s);
    while (sched.hasWork) step();
    expect(a.finishReason).toBe('stop');
    expect(a.generated).toEqual(ref.generated.slice(0, ref.generated.indexOf(stopAt)));
    expect(b.finishReason).toBe('length');
    expect(b.generated.length).toBe(3);
    expect(c.finishReason).toBe('length');
    expect(c.numTokens).toBe(12);
    expect(c.generated).toEqual(runAlone(prompt(8, 7), 100, 12).generated);
  });

  it('abort frees pages of running and waiting sequences, even while their step is in flight', () => {
    const { sched, model, pool } = setup({ pages: 16, pageSize: 4, contextLength: 64, maxBatchTokens: 8, maxRunningSeqs: 2 });
    const a = seq(prompt(6, 1), 10);
    const b = seq(prompt(6, 2), 10);
    const c = seq(prompt(6, 3), 10);
    for (const s of [a, b, c]) sched.add(s);
    let s = sched.schedule()!;
    sched.commit(s, model.run(s.batch));
    s = sched.schedule()!;
    expect(a.blockTable.length + b.blockTable.length).toBeGreaterThan(0);
    expect(sched.abort(b.id)).toBe(true); // in flight
    expect(b.status).toBe('finished');
    expect(b.finishReason).toBe('abort');
    expect(b.blockTable).toEqual([]);
    sched.commit(s, model.run(s.batch)); // skips b
    expect(b.generated).toEqual([]);
    sched.checkInvariants();
    expect(sched.abort(c.id)).toBe(true); // waiting
    expect(sched.abort(c.id)).toBe(false);
    expect(sched.abort(12345)).toBe(false);
    expect(sched.abort(a.id)).toBe(true);
    expect(pool.freePages).toBe(16);
    expect(sched.hasWork).toBe(false);
    sched.checkInvariants();
  });

  it('rejects at add() a prompt longer than the context, and other sequences that can never run', () => {
    const { sched } = setup({ pages: 4, pageSize: 4, contextLength: 32, maxBatchTokens: 64 });
    expect(() => sched.add(seq(prompt(40), 4))).toThrow(/prompt of 40 tokens does not fit the context of 32 tokens/);
    expect(() => sched.add(seq(prompt(32), 4))).toThrow(/does not fit the context/);
    expect(() => sched.add(seq([], 4))).toThrow(/no tokens/);
    expect(() => sched.add(seq(prompt(3), 0))).toThrow(/maxTokens/);
    expect(() => sched.add(seq(prompt(16), 4))).toThrow(/needs 5 KV pages; the pool has 4 pages/);
    const ok = seq(prompt(15), 4);
    sched.add(ok);
    expect(() => sched.add(ok)).toThrow(/already scheduled/);
    expect(sched.waiting).toEqual([ok]);
  });

  it('finishes a sequence with length when the whole pool cannot hold its next token', () => {
    const finished: Sequence[] = [];
    const { sched, step, pool } = setup({ pages: 3, pageSize: 2, contextLength: 64, onFinished: (s) => finished.push(s) });
    const a = seq(prompt(3), 10);
    sched.add(a);
    let last: ScheduledStep | null = null;
    while (sched.hasWork) last = step();
    expect(last).toBeNull(); // the step that finds no page has nothing else to run
    // 6 slots: positions 0..5 are computed, so 7 tokens known and position 6 has no page.
    expect(a.finishReason).toBe('length');
    expect(a.numTokens).toBe(7);
    expect(a.generated).toEqual(runAlone(prompt(3), 4, 64).generated);
    expect(pool.freePages).toBe(3);
    expect(finished).toEqual([a]);
  });

  it('requires each step to be committed before the next', () => {
    const { sched, model } = setup({ pages: 8, pageSize: 4, contextLength: 32 });
    sched.add(seq(prompt(3), 4));
    const s = sched.schedule()!;
    expect(() => sched.schedule()).toThrow(/commit the previous step/);
    expect(() => sched.commit(s, [])).toThrow(/1 sampling/);
    sched.commit(s, model.run(s.batch));
    expect(() => sched.commit(s, [1])).toThrow(/last schedule/);
  });

  it('fcfs orders by arrival and picks the newest victim', () => {
    const [x, y, z] = [seq([1], 1), seq([2], 1), seq([3], 1)];
    [x.arrival, y.arrival, z.arrival] = [2, 0, 1];
    expect(fcfs.order([x, y, z])).toEqual([y, z, x]);
    expect(fcfs.pickVictim([y, x, z])).toBe(x);
  });

  it('holds every invariant through a seeded random stress run with preemption and aborts', () => {
    let totalPreemptions = 0;
    for (const seed of [1, 2, 3, 4, 5]) {
      const rand = rng(seed);
      const pageSize = 1 + Math.floor(rand() * 4);
      const contextLength = 24 + Math.floor(rand() * 24);
      const pages = Math.ceil(contextLength / pageSize) + Math.floor(rand() * 20);
      const maxBatchTokens = 4 + Math.floor(rand() * 40);
      const maxRunningSeqs = 1 + Math.floor(rand() * 8);
      const { sched, step, pool } = setup({ pages, pageSize, contextLength, maxBatchTokens, maxRunningSeqs });
      const all: { s: Sequence; prompt: number[]; aborted: boolean }[] = [];
      let preemptions = 0;
      for (let t = 0; t < 2000 && (t < 300 || sched.hasWork); t++) {
        if (t < 300 && rand() < 0.2) {
          const p = prompt(1 + Math.floor(rand() * (contextLength - 1)), Math.floor(rand() * 1000));
          // Some stop on a token they would generate (a stop id taken from their own output).
          const own = runAlone(p, 30, contextLength).generated;
          const s = seq(p, 1 + Math.floor(rand() * 30), rand() < 0.3 ? [own[Math.floor(rand() * own.length)]] : []);
          sched.add(s);
          all.push({ s, prompt: p, aborted: false });
        }
        if (rand() < 0.02 && all.length) {
          const victim = all[Math.floor(rand() * all.length)];
          if (sched.abort(victim.s.id)) victim.aborted = true;
        }
        const st = step();
        if (st) {
          expect(st.batch.tokenIds.length).toBeLessThanOrEqual(maxBatchTokens);
          expect(st.seqs.length).toBeLessThanOrEqual(maxRunningSeqs);
          expect(new Set(st.seqs.map((e) => e.seq)).size).toBe(st.seqs.length);
          preemptions += st.preempted.length;
        } else {
          expect(sched.running.length).toBe(0);
          expect(sched.waiting.length).toBe(0);
        }
        const held = sched.running.reduce((n, s) => n + s.blockTable.length, 0);
        expect(pool.usedPages).toBe(held);
      }
      expect(sched.hasWork).toBe(false);
      expect(pool.freePages).toBe(pages);
      for (const { s, prompt: p, aborted } of all) {
        expect(s.status).toBe('finished');
        if (aborted) continue;
        const ref = runAlone(p, s.maxTokens, contextLength, [...s.stopIds]);
        expect(s.generated).toEqual(ref.generated);
        expect(s.finishReason).toBe(ref.reason);
      }
      totalPreemptions += preemptions;
    }
    expect(totalPreemptions).toBeGreaterThan(0);
  });
});
