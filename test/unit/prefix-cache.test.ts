import { describe, expect, it } from 'vitest';
import { HashPrefixCache, KvContext, KvManager, PageHasher, PagePool, fnv1a64, type PageHash } from '../../src/kv/index.js';
import { Scheduler, Sequence, type ScheduledStep, type SchedulerOptions } from '../../src/scheduler/index.js';
import { FakeModel, runAlone, VOCAB } from '../helpers/fake-model.js';
import { rng } from '../helpers/random.js';

const FINGERPRINT = 'model-a';
const bytes = (s: string) => new TextEncoder().encode(s);

function cacheSetup(pages: number, pageSize: number) {
  const pool = new PagePool(pages);
  const cache = new HashPrefixCache(pool, pageSize, FINGERPRINT);
  const kv = new KvManager(pool, pageSize, cache);
  return { pool, cache, kv };
}

/** A context that computed `tokens` (pages allocated, numComputed set, full pages indexed). */
function computed(kv: KvManager, tokens: number[], salt = ''): KvContext {
  const ctx = new KvContext(tokens, salt);
  kv.takePrefix(ctx, kv.lookupPrefix(ctx));
  kv.allocate(ctx, tokens.length - ctx.numComputed);
  ctx.numComputed = tokens.length;
  kv.indexComputed(ctx);
  return ctx;
}

const ids = (n: number, base = 1) => Array.from({ length: n }, (_, i) => (base * 131 + i * 17) % VOCAB);

describe('page hashes', () => {
  it('are FNV-1a 64 (published test vectors)', () => {
    expect(fnv1a64([])).toBe('cbf29ce484222325');
    expect(fnv1a64(bytes('a'))).toBe('af63dc4c8601ec8c');
    expect(fnv1a64(bytes('foobar'))).toBe('85944171f73967e8');
  });

  it('chain the parent, and differ by ids, salt, model and position in the chain', () => {
    const h = new PageHasher(FINGERPRINT);
    const a = h.hash(null, [1, 2, 3, 4], '');
    expect(h.hash(null, [1, 2, 3, 4], '')).toBe(a);
    const all = [
      a,
      h.hash(null, [1, 2, 3, 5], ''),
      h.hash(null, [1, 2, 3, 4], 'salt'),
      new PageHasher('model-b').hash(null, [1, 2, 3, 4], ''),
      h.hash(a, [1, 2, 3, 4], ''),
      h.hash(h.hash(null, [9, 9, 9, 9], ''), [1, 2, 3, 4], ''),
      h.hash(null, [1, 2, 3], ''),
    ];
    expect(new Set(all).size).toBe(all.length);
  });

  it('are well distributed: no collision in 50000 pages, every bit set about half the time', () => {
    const h = new PageHasher(FINGERPRINT);
    const rand = rng(7);
    const seen = new Set<PageHash>();
    const ones = new Array<number>(64).fill(0);
    let parent: PageHash | null = null;
    const n = 50000;
    for (let i = 0; i < n; i++) {
      // Nearby inputs (one id apart, chained) are the hard case for a weak hash.
      const page = [i % 7, Math.floor(rand() * 4), i, 3];
      const hash: PageHash = h.hash(i % 5 === 0 ? null : parent, page, '');
      seen.add(hash);
      const bits = BigInt('0x' + hash);
      for (let b = 0; b < 64; b++) if ((bits >> BigInt(b)) & 1n) ones[b]++;
      parent = hash;
    }
    expect(seen.size).toBe(n);
    for (const count of ones) expect(Math.abs(count / n - 0.5)).toBeLessThan(0.02);
  });
});

describe('PagePool states', () => {
  it('moves pages between free, referenced and cached, evicting least recently released first', () => {
    const pool = new PagePool(4);
    const [a, b, c] = pool.allocate(3)!;
    expect([a, b, c].map((p) => pool.state(p))).toEqual(['referenced', 'referenced', 'referenced']);
    pool.setHash(a, 'aa');
    pool.setHash(b, 'bb');
    pool.release([b, a, c]); // tail first
    expect([pool.state(a), pool.state(b), pool.state(c)]).toEqual(['cached', 'cached', 'free']);
    expect([pool.freePages, pool.cachedPages, pool.usedPages, pool.availablePages]).toEqual([2, 2, 0, 4]);
    pool.checkInvariants();
    pool.retain(a); // a cache hit: cached -> referenced
    expect(pool.state(a)).toBe('referenced');
    expect(() => pool.retain(c)).toThrow(/free/);
    expect(pool.evictOldest()).toEqual({ page: b, hash: 'bb' });
    expect(pool.evictOldest()).toBeNull();
    pool.release([a]);
    expect(pool.evictOldest()).toEqual({ page: a, hash: 'aa' });
    expect(pool.freePages).toBe(4);
    pool.checkInvariants();
  });

  it('invariant checks catch double counting and missing owners', () => {
    const pool = new PagePool(3);
    const [a] = pool.allocate(1)!;
    expect(() => pool.checkInvariants([[a], [a]])).toThrow(/owned 2 times/);
    expect(() => pool.checkInvariants([], true)).toThrow(/0 owners/);
    pool.checkInvariants([[a]], true);
    expect(() => pool.setHash(2, 'x')).toThrow(/not referenced/);
    pool.setHash(a, 'x');
    expect(() => pool.setHash(a, 'y')).toThrow(/already/);
    pool.release([a]);
    expect(() => pool.release([a])).toThrow(/released more often/);
  });
});

describe('HashPrefixCache + KvManager', () => {
  it('takes the longest run of cached full pages, at most tokens - 1, and counts queries and hits', () => {
    const { kv, pool, cache } = cacheSetup(16, 4);
    const a = computed(kv, ids(10)); // pages: 2 full (indexed) + 1 partial
    expect(cache.size).toBe(2);
    expect(a.indexedPages).toBe(2);
    // Same 10 tokens: 2 pages cached; the partial third page is never indexed.
    const b = new KvContext(ids(10));
    const match = kv.lookupPrefix(b);
    expect(match.pages).toEqual(a.blockTable.slice(0, 2));
    expect(kv.takePrefix(b, match)).toBe(8);
    expect(b.blockTable.map((p) => pool.refCount(p))).toEqual([2, 2]);
    // Exactly 8 tokens: only 1 page may come from the cache (the last token is computed).
    const c = new KvContext(ids(8));
    expect(kv.lookupPrefix(c).pages).toEqual(a.blockTable.slice(0, 1));
    // Diverging in the second page: the first page only.
    const d = new KvContext([...ids(6), 999, 998, 997, 996, 995]);
    expect(kv.lookupPrefix(d).pages).toEqual(a.blockTable.slice(0, 1));
    expect(kv.stats).toMatchObject({ queryTokens: 20, hitTokens: 8 });
    kv.checkInvariants([a, b], true);
  });

  it('never shares across salts or models', () => {
    const { kv } = cacheSetup(16, 4);
    computed(kv, ids(9), 'tenant-1');
    expect(kv.lookupPrefix(new KvContext(ids(9), 'tenant-2')).pages).toEqual([]);
    expect(kv.lookupPrefix(new KvContext(ids(9), '')).pages).toEqual([]);
    expect(kv.lookupPrefix(new KvContext(ids(9), 'tenant-1')).pages).toHaveLength(2);
    const other = new KvManager(kv.pool, 4, new HashPrefixCache(kv.pool, 4, 'model-b'));
    expect(other.lookupPrefix(new KvContext(ids(9), 'tenant-1')).pages).toEqual([]);
  });

  it('guards against hash collisions by comparing token ids', () => {
    const { kv, cache } = cacheSetup(8, 4);
    const a = computed(kv, ids(5));
    // A context that claims a's first page hash for other tokens (a forged collision).
    const forged = new KvContext([7, 7, 7, 7, 7]);
    forged.pageHashes.push(a.pageHashes[0]);
    expect(kv.lookupPrefix(forged).pages).toEqual([]);
    expect(cache.collisions).toBe(1);
  });

  it('keeps released indexed pages cached, frees the rest, and evicts chain tails before parents (LRU)', () => {
    const { kv, pool, cache } = cacheSetup(6, 2);
    const a = computed(kv, ids(5, 1)); // 2 indexed pages + 1 partial
    const [a0, a1, a2] = a.blockTable;
    kv.free(a);
    expect([pool.state(a0), pool.state(a1), pool.state(a2)]).toEqual(['cached', 'cached', 'free']);
    const b = computed(kv, ids(5, 2)); // 3 pages: 1 free... needs 3 of 4 free
    kv.free(b);
    // a's chain is older than b's; a's tail (a1) before its head (a0).
    const c = new KvContext(ids(11, 3));
    kv.allocate(c, 11); // 6 pages: every cached page is evicted, oldest first
    expect(kv.stats.evictions).toBe(4);
    expect(cache.size).toBe(0);
    kv.free(c);
    kv.checkInvariants([], true);
    // Order of eviction, checked on a fresh pool: evict one page at a time.
    const s = cacheSetup(6, 2);
    const x = computed(s.kv, ids(5, 1));
    const [x0, x1] = x.blockTable;
    s.kv.free(x);
    const y = computed(s.kv, ids(5, 2));
    const [y0, y1] = y.blockTable;
    s.kv.free(y);
    const order: number[] = [];
    for (let i = 0; i < 4; i++) order.push(s.pool.evictOldest()!.page);
    expect(order).toEqual([x1, x0, y1, y0]);
  });

  it('counts cached pages it would take as unavailable when checking room', () => {
    const { kv } = cacheSetup(4, 2);
    const a = computed(kv, ids(5)); // 2 indexed + 1 partial
    kv.free(a); // 2 cached, 2 free
    const b = new KvContext([...ids(4), 1, 2, 3, 4, 5]);
    const match = kv.lookupPrefix(b);
    expect(match.pages).toHaveLength(2);
    // 4 tokens cached; 5 more need 3 pages: only the 2 free ones remain (the cached ones are b's).
    expect(kv.canTakePrefix(match, 5)).toBe(false);
    expect(kv.canTakePrefix(match, 4)).toBe(true);
  });

  it('copies a shared partial page before writing into it (copy-on-write) and never writes a cached page', () => {
    const { kv, pool } = cacheSetup(8, 4);
    const leader = computed(kv, ids(7)); // page 0 full (indexed), page 1 holds 3 tokens
    const follower = new KvContext(ids(7));
    kv.share(leader, follower, 6);
    expect(follower.blockTable).toEqual(leader.blockTable);
    expect(kv.pagesNeeded(follower, 1)).toBe(1); // the copy
    const copies = kv.allocate(follower, 1);
    expect(copies).toEqual([{ src: leader.blockTable[1], dst: follower.blockTable[1] }]);
    expect(follower.blockTable[0]).toBe(leader.blockTable[0]);
    expect(follower.blockTable[1]).not.toBe(leader.blockTable[1]);
    expect(pool.refCount(leader.blockTable[1])).toBe(1);
    // The leader now holds its partial page alone: it writes in place.
    expect(kv.allocate(leader, 1)).toEqual([]);
    // A context whose next write falls in an indexed page copies it too.
    const c = new KvContext(ids(4));
    kv.share(leader, c, 3);
    expect(kv.allocate(c, 1)).toHaveLength(1);
    expect(kv.stats.pageCopies).toBe(2);
    kv.checkInvariants([leader, follower, c], true);
    expect(() => kv.share(leader, new KvContext([5, 5, 5]), 3)).toThrow(/differ/);
  });
});

// ---- The scheduler with the prefix cache, over the fake model ----

function setup(opts: { pages: number; pageSize: number; prefixCache?: boolean } & Omit<SchedulerOptions, 'kv'>) {
  const pool = new PagePool(opts.pages);
  const cache = opts.prefixCache === false ? undefined : new HashPrefixCache(pool, opts.pageSize, FINGERPRINT);
  const kv = new KvManager(pool, opts.pageSize, cache);
  const sched = new Scheduler({ ...opts, kv });
  const model = new FakeModel(opts.pageSize);
  let prefillTokens = 0;
  /** One schedule + forward + commit; checks that no written page is shared, and the invariants. */
  const step = (): ScheduledStep | null => {
    const s = sched.schedule();
    if (s) {
      const copied = new Set(s.kvOps.map((c) => c.dst));
      for (const slot of s.batch.slotMapping) {
        const page = Math.floor(slot / opts.pageSize);
        expect(pool.refCount(page)).toBe(1);
        expect(pool.hashOf(page)).toBeNull();
        copied.delete(page);
      }
      for (const e of s.seqs) if (e.numTokens > 1 || e.seq.numComputed < e.seq.numPromptTokens) prefillTokens += e.numTokens;
      sched.commit(s, model.run(s.batch, s.kvOps));
    }
    sched.checkInvariants();
    return s;
  };
  const drain = () => {
    while (sched.hasWork) step();
  };
  return { pool, kv, sched, model, step, drain, prefilled: () => prefillTokens };
}

let nextId = 1;
const seq = (promptIds: number[], maxTokens: number, o: { salt?: string; share?: Sequence } = {}) =>
  new Sequence({ id: nextId++, promptIds, maxTokens, cacheSalt: o.salt, sharePromptWith: o.share });

/** Tokens a perfect page-aligned cache would skip for `prompt` given the token lists computed before. */
function perfectHit(prompt: number[], before: number[][], pageSize: number): number {
  let best = 0;
  for (const t of before) {
    let common = 0;
    while (common < t.length && common < prompt.length && t[common] === prompt[common]) common++;
    best = Math.max(best, common);
  }
  const usable = Math.min(best, prompt.length - 1);
  return Math.floor(usable / pageSize) * pageSize;
}

describe('Scheduler with the prefix cache', () => {
  it('agents with one system prompt and growing histories hit what a perfect page-aligned cache gives', () => {
    const pageSize = 4;
    const { sched, drain, pool } = setup({ pages: 400, pageSize, contextLength: 512, maxBatchTokens: 512 });
    const system = ids(21, 9);
    const histories = Array.from({ length: 5 }, (_, a) => [...system, ...ids(3 + a, 100 + a)]);
    const computedBefore: number[][] = [];
    let expectedHits = 0;
    let prompts = 0;
    for (let turn = 0; turn < 4; turn++) {
      const turnSeqs = histories.map((h, a) => ({ s: seq(h, 5 + a), a }));
      for (const { s } of turnSeqs) sched.add(s);
      drain();
      for (const { s, a } of turnSeqs) {
        // Agents added before this one in the same turn count too: a sequence whose next page
        // another is computing waits until it is cached.
        const expected = perfectHit(histories[a], [...computedBefore, ...histories.slice(0, a)], pageSize);
        expect(s.cachedTokens).toBe(expected);
        expectedHits += expected;
        prompts += histories[a].length;
        expect(s.generated).toEqual(runAlone(histories[a], 5 + a, 512).generated);
      }
      for (const { s, a } of turnSeqs) {
        computedBefore.push([...s.tokens.slice(0, s.tokens.length - 1)]); // the last generated token has no K/V
        // The next turn: the answer, a tool result and a new message.
        histories[a] = [...s.tokens, ...ids(2 + turn, 200 + a * 10 + turn)];
      }
    }
    expect(expectedHits).toBeGreaterThan(prompts / 2);
    expect(sched.kv.stats.hitTokens).toBe(expectedHits);
    expect(pool.usedPages).toBe(0);
  });

  it('gives the same outputs with the cache as without, and computes fewer prefill tokens', () => {
    const run = (prefixCache: boolean) => {
      const { sched, drain, prefilled } = setup({ pages: 64, pageSize: 4, contextLength: 128, maxBatchTokens: 16, prefixCache });
      const out: number[][] = [];
      const common = ids(30, 5);
      for (let r = 0; r < 3; r++) {
        const s = [0, 1, 2].map((i) => seq([...common, ...ids(2 + i, r * 10 + i)], 6));
        s.forEach((x) => sched.add(x));
        drain();
        out.push(...s.map((x) => x.generated));
      }
      return { out, prefilled: prefilled() };
    };
    const on = run(true);
    const off = run(false);
    expect(on.out).toEqual(off.out);
    expect(on.prefilled).toBeLessThan(off.prefilled / 2);
  });

  it('a sequence whose next page another is computing waits one step and takes it from the cache', () => {
    const { sched, step, drain, prefilled } = setup({ pages: 64, pageSize: 4, contextLength: 128, maxBatchTokens: 64 });
    const system = ids(10, 7);
    const a = seq([...system, 1, 2, 3], 3);
    const b = seq([...system, 4, 5], 3);
    const c = seq(ids(6, 99), 3); // shares nothing: not held back
    [a, b, c].forEach((s) => sched.add(s));
    expect(step()!.seqs.map((e) => e.seq.id)).toEqual([a.id, c.id]);
    const second = step()!;
    expect(second.seqs.find((e) => e.seq === b)?.numTokens).toBe(4); // 12 tokens, 8 cached
    drain();
    expect(b.cachedTokens).toBe(8);
    expect(prefilled()).toBe(13 + 6 + 4);
    expect(b.generated).toEqual(runAlone([...system, 4, 5], 3, 128).generated);
  });

  it('isolates salts: a prompt computed under one salt is a miss under another', () => {
    const { sched, drain } = setup({ pages: 64, pageSize: 4, contextLength: 128 });
    const p = ids(20, 3);
    const a = seq(p, 3, { salt: 'alice' });
    sched.add(a);
    drain();
    const b = seq(p, 3, { salt: 'bob' });
    const c = seq(p, 3, { salt: 'alice' });
    sched.add(b);
    drain();
    sched.add(c);
    drain();
    expect([a.cachedTokens, b.cachedTokens, c.cachedTokens]).toEqual([0, 0, 16]);
    expect(b.generated).toEqual(a.generated);
    expect(c.generated).toEqual(a.generated);
  });

  it('n > 1: the other choices share the first one\'s prompt pages and copy the partial one on write', () => {
    const { sched, step, drain, prefilled, kv } = setup({ pages: 64, pageSize: 4, contextLength: 128, maxBatchTokens: 64 });
    const p = ids(10, 4);
    const first = seq(p, 6);
    const others = [seq(p, 4, { share: first }), seq(p, 5, { share: first })];
    [first, ...others].forEach((s) => sched.add(s));
    const s1 = step()!;
    expect(s1.seqs.map((e) => [e.seq.id, e.numTokens])).toEqual([[first.id, 10]]);
    const s2 = step()!;
    // first decodes; each other choice computes only the last prompt token (into a copy of page 2).
    expect(s2.seqs.map((e) => [e.seq.id, e.numTokens])).toEqual([[first.id, 1], [others[0].id, 1], [others[1].id, 1]]);
    expect(s2.kvOps).toHaveLength(2);
    drain();
    expect(prefilled()).toBe(12);
    expect(others.map((s) => s.cachedTokens)).toEqual([9, 9]);
    for (const s of [first, ...others]) expect(s.generated).toEqual(runAlone(p, s.maxTokens, 128).generated);
    expect(kv.stats.pageCopies).toBe(2);
  });

  it('a choice whose first choice was aborted or preempted before sharing computes its prompt alone', () => {
    const { sched, step, drain } = setup({ pages: 64, pageSize: 4, contextLength: 128, maxBatchTokens: 64 });
    const p = ids(10, 6);
    const first = seq(p, 3);
    const other = seq(p, 3, { share: first });
    sched.add(first);
    sched.add(other);
    step();
    sched.abort(first.id);
    drain();
    expect(other.cachedTokens).toBe(8); // the first choice's full pages stayed cached
    expect(other.generated).toEqual(runAlone(p, 3, 128).generated);
  });

  it('a small pool evicts, preempts sequences holding shared pages, and still agrees', () => {
    const { sched, drain, pool, kv } = setup({ pages: 14, pageSize: 4, contextLength: 64, maxBatchTokens: 32 });
    const system = ids(12, 8);
    const all: { s: Sequence; p: number[] }[] = [];
    for (let round = 0; round < 4; round++) {
      for (let i = 0; i < 4; i++) {
        const p = [...system, ...ids(3 + i, round * 7 + i)];
        const first = seq(p, 12);
        const other = seq(p, 10, { share: first });
        sched.add(first);
        sched.add(other);
        all.push({ s: first, p }, { s: other, p });
      }
      drain();
    }
    for (const { s, p } of all) expect(s.generated).toEqual(runAlone(p, s.maxTokens, 64).generated);
    expect(all.some(({ s }) => s.preemptions > 0)).toBe(true);
    expect(kv.stats.evictions).toBeGreaterThan(0);
    expect(kv.stats.hitTokens).toBeGreaterThan(0);
    expect(pool.usedPages).toBe(0);
  });

  it('holds every invariant through a seeded random run with shared prefixes, salts, n > 1, preemption and aborts', () => {
    let preemptions = 0;
    let hits = 0;
    let copies = 0;
    for (const seed of [11, 12, 13, 14, 15, 16]) {
      const rand = rng(seed);
      const pageSize = 1 + Math.floor(rand() * 4);
      const contextLength = 24 + Math.floor(rand() * 24);
      const pages = Math.ceil(contextLength / pageSize) + Math.floor(rand() * 24);
      const maxBatchTokens = 4 + Math.floor(rand() * 40);
      const maxRunningSeqs = 1 + Math.floor(rand() * 8);
      const { sched, step, pool, kv } = setup({ pages, pageSize, contextLength, maxBatchTokens, maxRunningSeqs });
      const prefixes = [0, 1, 2].map((k) => ids(contextLength - 2, 50 + k + seed));
      const all: { s: Sequence; prompt: number[]; aborted: boolean }[] = [];
      for (let t = 0; t < 3000 && (t < 300 || sched.hasWork); t++) {
        if (t < 300 && rand() < 0.2) {
          const len = 1 + Math.floor(rand() * (contextLength - 1));
          const shared = prefixes[Math.floor(rand() * 3)].slice(0, Math.floor(rand() * len));
          const p = [...shared, ...ids(len - shared.length, Math.floor(rand() * 1000))];
          const salt = rand() < 0.2 ? 'other' : '';
          const first = seq(p, 1 + Math.floor(rand() * 20), { salt });
          sched.add(first);
          all.push({ s: first, prompt: p, aborted: false });
          const n = rand() < 0.2 ? 1 + Math.floor(rand() * 3) : 0;
          for (let i = 0; i < n; i++) {
            const s = seq(p, 1 + Math.floor(rand() * 20), { salt, share: first });
            sched.add(s);
            all.push({ s, prompt: p, aborted: false });
          }
        }
        if (rand() < 0.02 && all.length) {
          const victim = all[Math.floor(rand() * all.length)];
          if (sched.abort(victim.s.id)) victim.aborted = true;
        }
        const st = step();
        if (st) {
          expect(st.batch.tokenIds.length).toBeLessThanOrEqual(maxBatchTokens);
          preemptions += st.preempted.length;
        }
        const held = new Set(sched.running.flatMap((s) => s.blockTable));
        expect(pool.usedPages).toBe(held.size);
      }
      expect(sched.hasWork).toBe(false);
      expect(pool.usedPages).toBe(0);
      expect(pool.freePages + pool.cachedPages).toBe(pages);
      for (const { s, prompt: p, aborted } of all) {
        expect(s.status).toBe('finished');
        if (aborted) continue;
        const ref = runAlone(p, s.maxTokens, contextLength);
        expect(s.generated).toEqual(ref.generated);
      }
      hits += kv.stats.hitTokens;
      copies += kv.stats.pageCopies;
    }
    expect(preemptions).toBeGreaterThan(0);
    expect(hits).toBeGreaterThan(0);
    expect(copies).toBeGreaterThan(0);
  });
});
