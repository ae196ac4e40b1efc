import { describe, expect, it } from 'vitest';
import { KvManager, type KvOwner } from '../../src/kv/kv-manager.js';
import { PagePool } from '../../src/kv/page-pool.js';

const owner = (): KvOwner => ({ numComputed: 0, blockTable: [] });

describe('KvManager', () => {
  it('allocates just the pages the next tokens need, in position order', () => {
    const kv = new KvManager(new PagePool(8), 4);
    const s = owner();
    expect(kv.pagesNeeded(s, 1)).toBe(1);
    expect(kv.pagesNeeded(s, 4)).toBe(1);
    expect(kv.pagesNeeded(s, 5)).toBe(2);
    kv.allocate(s, 6);
    expect(s.blockTable).toEqual([0, 1]);
    s.numComputed = 6;
    expect(kv.pagesNeeded(s, 2)).toBe(0); // positions 6, 7 fit page 1
    kv.allocate(s, 2);
    expect(s.blockTable).toEqual([0, 1]);
    s.numComputed = 8;
    kv.allocate(s, 1);
    expect(s.blockTable).toEqual([0, 1, 2]);
    expect(kv.freePages).toBe(5);
    kv.checkInvariants([s]);
  });

  it('maps positions to page * pageSize + offset', () => {
    const kv = new KvManager(new PagePool(8), 4);
    const a = owner();
    const b = owner();
    kv.allocate(a, 4); // page 0
    kv.allocate(b, 4); // page 1
    a.numComputed = 4;
    kv.allocate(a, 3); // page 2
    expect([0, 3, 4, 6].map((p) => kv.slotFor(a, p))).toEqual([0, 3, 8, 10]);
    expect(kv.slotFor(b, 2)).toBe(6);
    expect(() => kv.slotFor(b, 4)).toThrow(/no page/);
    expect(() => kv.slotFor(b, -1)).toThrow(/no page/);
  });

  it('refuses what the pool cannot hold, and free returns every page', () => {
    const pool = new PagePool(3);
    const kv = new KvManager(pool, 2);
    const a = owner();
    const b = owner();
    expect(kv.canAllocate(a, 6)).toBe(true);
    expect(kv.canAllocate(a, 7)).toBe(false);
    expect(() => kv.allocate(a, 7)).toThrow(/exhausted/);
    expect(a.blockTable).toEqual([]);
    kv.allocate(a, 4);
    expect(kv.canAllocate(b, 3)).toBe(false);
    expect(kv.canAllocate(b, 2)).toBe(true);
    kv.free(a);
    expect(a.blockTable).toEqual([]);
    expect(pool.freePages).toBe(3);
    kv.allocate(b, 6);
    kv.checkInvariants([a, b]);
  });

  it('keeps reference counts: a shared page survives until its last owner frees it', () => {
    const pool = new PagePool(4);
    const kv = new KvManager(pool, 2);
    const a = owner();
    kv.allocate(a, 4);
    const b: KvOwner = { numComputed: 2, blockTable: [a.blockTable[0]] };
    pool.retain(a.blockTable[0]);
    kv.checkInvariants([a, b]);
    kv.free(a);
    expect(pool.refCount(b.blockTable[0])).toBe(1);
    expect(pool.freePages).toBe(3);
    kv.checkInvariants([b]);
    kv.free(b);
    expect(pool.freePages).toBe(4);
  });

  it('invariant checks catch a table owning a free page or too few pages', () => {
    const pool = new PagePool(4);
    const kv = new KvManager(pool, 2);
    expect(() => kv.checkInvariants([{ numComputed: 1, blockTable: [2] }])).toThrow(/reference count/);
    expect(() => kv.checkInvariants([{ numComputed: 3, blockTable: [] }])).toThrow(/pages/);
    expect(() => new KvManager(pool, 0)).toThrow(/page size/);
  });
});
