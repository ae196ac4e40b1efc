// The context store's budget in browsers: the records already stored plus 80% of what the
// origin's quota (navigator.storage.estimate()) leaves free, never more than asked for.
import { describe, expect, it } from 'vitest';
import { quotaBudget } from '../../src/engine/context-tier.js';
import type { RecordMeta, StoreBackend } from '../../src/persist/index.js';

function backendHolding(bytes: number[]): StoreBackend {
  const metas: RecordMeta[] = bytes.map((b, i) => ({ key: i.toString(16).padStart(16, '0'), bytes: b, lastUsed: i }));
  return {
    kind: 'indexeddb',
    commit: async () => {},
    read: async () => null,
    touch: async () => {},
    list: async () => metas,
    close: () => {},
  };
}

const estimate = (quota: number | undefined, usage: number) => ({ estimate: async () => ({ quota, usage }) });

describe('quotaBudget', () => {
  it('keeps what is stored and takes 80% of the free quota', async () => {
    expect(await quotaBudget(estimate(1_000_000, 400_000), backendHolding([50_000, 50_000]), 10 ** 9)).toBe(100_000 + 480_000);
  });

  it('never more than asked for', async () => {
    expect(await quotaBudget(estimate(10 ** 10, 0), backendHolding([]), 256 * 2 ** 20)).toBe(256 * 2 ** 20);
  });

  it('an origin already over its quota keeps only what it stores', async () => {
    expect(await quotaBudget(estimate(64 * 1024, 1_300_000), backendHolding([9000]), 10 ** 9)).toBe(9000);
  });

  it('no quota reported, or estimate() failing: what was asked for', async () => {
    expect(await quotaBudget(estimate(undefined, 0), backendHolding([]), 1234)).toBe(1234);
    expect(await quotaBudget({ estimate: () => Promise.reject(new Error('denied')) }, backendHolding([]), 1234)).toBe(1234);
  });
});
