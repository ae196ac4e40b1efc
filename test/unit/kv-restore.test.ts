// KvManager's hooks for the context store: onIndexed reports each page the prefix cache indexes
// once; takePagesFor / adoptPages give restored content pages of its own and index it as if
// computed, keeping the context's cached prefix from eviction while they are taken; and the
// scheduler holds a sequence whose prefix is being restored while others run.
import { describe, expect, it } from 'vitest';
import { HashPrefixCache } from '../../src/kv/prefix-cache.js';
import { KvContext } from '../../src/kv/kv-context.js';
import { KvManager } from '../../src/kv/kv-manager.js';
import { PagePool } from '../../src/kv/page-pool.js';
import { Scheduler, Sequence } from '../../src/scheduler/index.js';

const PS = 4;
const FP = 'f'.repeat(64);

function manager(pages: number): KvManager {
  const pool = new PagePool(pages);
  return new KvManager(pool, PS, new HashPrefixCache(pool, PS, FP));
}

/** A context that computed its tokens and freed its pages (they stay cached). */
function computeAndFree(kv: KvManager, tokens: number[]): KvContext {
  const ctx = new KvContext(tokens);
  kv.allocate(ctx, tokens.length);
  ctx.numComputed = tokens.length;
  kv.indexComputed(ctx);
  kv.free(ctx);
  return ctx;
}

const range = (n: number, from = 1) => Array.from({ length: n }, (_, i) => from + i);

describe('KvManager and the context store', () => {
  it('onIndexed reports each newly indexed page once, with its index', () => {
    const kv = manager(8);
    const seen: [number, number][] = [];
    kv.onIndexed = (page, _ctx, index) => seen.push([page, index]);
    computeAndFree(kv, range(9));
    expect(seen).toEqual([[0, 0], [1, 1]]);
    computeAndFree(kv, range(9)); // same content: already indexed, not reported again
    expect(seen).toHaveLength(2);
  });

  it('adopts restored pages after a cached prefix, as if computed: a new context takes them all', () => {
    const kv = manager(8);
    computeAndFree(kv, range(4)); // page 0 of the chain cached
    const ctx = new KvContext(range(13));
    const pages = kv.takePagesFor(ctx, 1, 2)!;
    expect(pages).toHaveLength(2);
    expect(kv.adoptPages(ctx, 1, pages)).toBe(2);
    kv.checkInvariants([], true);
    expect(kv.pool.cachedPages).toBe(3);
    const reader = new KvContext(range(13));
    expect(kv.lookupPrefix(reader).pages).toEqual([0, ...pages]);
  });

  it('keeps the cached prefix from eviction while taking pages, and refuses what the pool cannot spare', () => {
    const kv = manager(3);
    computeAndFree(kv, range(4)); // page 0 cached, the only cached page
    const ctx = new KvContext(range(13));
    expect(kv.takePagesFor(ctx, 1, 3)).toBeNull(); // 2 free pages: taking 3 would evict the prefix
    const pages = kv.takePagesFor(ctx, 1, 2)!;
    expect(kv.pool.hashOf(0)).not.toBeNull();
    expect(kv.adoptPages(ctx, 1, pages)).toBe(2);
    expect(kv.lookupPrefix(new KvContext(range(13))).pages).toHaveLength(3);
    // A prefix that is not cached (page 0 of another chain) cannot be continued.
    expect(kv.takePagesFor(new KvContext(range(13, 100)), 1, 1)).toBeNull();
  });

  it('frees a taken page whose content another page holds by now', () => {
    const kv = manager(8);
    const ctx = new KvContext(range(9));
    const pages = kv.takePagesFor(ctx, 0, 2)!;
    computeAndFree(kv, range(5)); // page 0 of the chain computed meanwhile
    expect(kv.adoptPages(ctx, 0, pages)).toBe(1);
    kv.checkInvariants([], true);
    expect(kv.pool.cachedPages).toBe(2);
  });

  it('the scheduler holds a restoring sequence and runs the others', () => {
    const kv = manager(16);
    const s = new Scheduler({ kv, contextLength: 64 });
    const held = new Sequence({ id: 0, promptIds: range(9), maxTokens: 2 });
    const other = new Sequence({ id: 1, promptIds: range(5, 50), maxTokens: 2 });
    s.add(held);
    s.add(other);
    held.restoring = true;
    const step = s.schedule()!;
    expect(step.seqs.map((x) => x.seq.id)).toEqual([1]);
    s.commit(step, [7]);
    held.restoring = false;
    expect(s.schedule()!.seqs.map((x) => x.seq.id)).toContain(0);
  });
});
