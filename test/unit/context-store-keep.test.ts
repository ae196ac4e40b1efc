// Kept contexts in the context store (no GPU): their records are exempt from the byte budget's
// LRU eviction until released, the keep outlives a restart (a <id>.kept file beside the
// records), deleting one of its records releases it, and a damaged .kept file is ignored.
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ContextStore, encodeRecord, type KeptContext, type PageRecord, type RecordIdentity } from '../../src/persist/index.js';
import { DirectoryBackend } from '../../src/persist/directory-backend.js';
import { storedPageBytes } from '../../src/persist/record.js';

const IDENTITY: RecordIdentity = {
  modelFingerprint: 'a'.repeat(64),
  tokenizerHash: 'b'.repeat(64),
  layout: { layers: 2, numKvHeads: 2, headDim: 32, pageSize: 16, format: 'q8_0' },
};
const keyOf = (i: number) => i.toString(16).padStart(16, '0');

function page(i: number): PageRecord {
  const bytes = () => new Uint8Array(storedPageBytes(IDENTITY.layout)).fill(i & 0xff);
  return { key: keyOf(i), parent: i === 0 ? null : keyOf(i - 1), tokens: Int32Array.from({ length: 16 }, (_, j) => i * 16 + j), k: [bytes(), bytes()], v: [bytes(), bytes()] };
}
// Every record but the first (no parent) has this size.
const RECORD = encodeRecord(IDENTITY, page(1)).length;
const kept = (from: number, to: number): KeptContext => ({ id: keyOf(to - 1), keys: Array.from({ length: to - from }, (_, i) => keyOf(from + i)), tokens: 16 * (to - from), keptAt: 1 });

describe('kept contexts in the context store', () => {
  let dir = '';
  let clock = 0;
  const open = async (records: number) => ContextStore.open(await DirectoryBackend.open(dir), IDENTITY, { maxBytes: records * RECORD, now: () => ++clock, onWarning: () => {} });
  const put = async (store: ContextStore, from: number, to: number) => {
    for (let i = from; i < to; i++) {
      store.put(page(i));
      await store.flush();
    }
  };
  const stored = (store: ContextStore) => store.list().map((r) => r.key).sort();

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'wgserve-keep-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('the budget evicts every other record before a kept one, and a release puts them back in LRU order', async () => {
    const store = await open(5);
    await put(store, 0, 3);
    await store.keep(kept(0, 3));
    await put(store, 3, 9);
    // Pages 0..2 are the least recently used, yet stay; the budget of 5 keeps the 2 newest others.
    expect(stored(store)).toEqual([0, 1, 2, 7, 8].map(keyOf));
    expect(store.usage()).toMatchObject({ records: 5, keptContexts: 1, keptBytes: 2 * RECORD + encodeRecord(IDENTITY, page(0)).length });
    expect(store.list().filter((r) => r.kept).map((r) => r.key)).toEqual([0, 1, 2].map(keyOf));
    expect(await store.release(keyOf(2))).toBe(true);
    expect(await store.release(keyOf(2))).toBe(false);
    await put(store, 9, 12);
    expect(stored(store)).toEqual([7, 8, 9, 10, 11].map(keyOf));
    await store.close();
  });

  it('records that do not fit beside the kept ones are left out; two kept contexts sharing pages pin them until both are released', async () => {
    const store = await open(4);
    await put(store, 0, 3);
    await store.keep(kept(0, 3));
    await store.keep(kept(0, 2));
    await put(store, 3, 6);
    expect(stored(store)).toEqual([0, 1, 2, 5].map(keyOf));
    await store.release(keyOf(2));
    await put(store, 6, 8);
    // Pages 0 and 1 are still kept by the second context; page 2 went back to LRU.
    expect(stored(store)).toEqual([0, 1, 6, 7].map(keyOf));
    expect(store.kept().map((k) => k.id)).toEqual([keyOf(1)]);
    await store.close();
  });

  it('a keep outlives a restart; a damaged .kept file is ignored; deleting a kept record releases its context', async () => {
    let store = await open(4);
    await put(store, 0, 2);
    await store.keep(kept(0, 2));
    await store.close();
    await writeFile(join(dir, `${keyOf(99)}.kept`), '{"id": "not json');
    await writeFile(join(dir, `${keyOf(98)}.kept`), JSON.stringify({ ...kept(0, 2), id: keyOf(98) }));
    store = await open(4);
    expect(store.kept()).toEqual([kept(0, 2)]);
    await put(store, 2, 8);
    expect(stored(store)).toEqual([0, 1, 6, 7].map(keyOf));
    await store.delete([keyOf(1)]);
    expect(store.kept()).toEqual([]);
    expect((await readdir(dir)).filter((n) => n === `${keyOf(1)}.kept`)).toEqual([]);
    await store.close();
    store = await open(4);
    expect(store.kept()).toEqual([]);
    await store.clear();
    await store.close();
  });
});
