// The context store's records and its Node directory backend: round trips, restarts, every
// check a record must pass (truncated, corrupt, another model / tokenizer / layout / version /
// key), write-behind batching, the byte budget with LRU eviction, and a full storage.
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ContextStore, crc32, decodeRecord, encodeRecord, RecordError, type PageRecord, type RecordIdentity, type StoreBackend, type StoreWarning } from '../../src/persist/index.js';
import { DirectoryBackend } from '../../src/persist/directory-backend.js';
import { recordIdentity, storedPageBytes } from '../../src/persist/record.js';
import { modelFingerprint, tokenizerFingerprint } from '../../src/model/fingerprint.js';
import { parseGgufHeader } from '../../src/model/index.js';
import { rng } from '../helpers/random.js';
import { modelPath } from '../helpers/shared.js';

const IDENTITY: RecordIdentity = {
  modelFingerprint: 'a'.repeat(64),
  tokenizerHash: 'b'.repeat(64),
  layout: { layers: 2, numKvHeads: 2, headDim: 32, pageSize: 16, format: 'q8_0' },
};

function page(key: string, seed: number, identity = IDENTITY): PageRecord {
  const r = rng(seed);
  const bytes = () => Uint8Array.from({ length: storedPageBytes(identity.layout) }, () => Math.floor(r() * 256));
  const { layers, pageSize } = identity.layout;
  return {
    key,
    parent: seed === 0 ? null : (seed - 1).toString(16).padStart(16, '0'),
    tokens: Int32Array.from({ length: pageSize }, () => Math.floor(r() * 32000)),
    k: Array.from({ length: layers }, bytes),
    v: Array.from({ length: layers }, bytes),
  };
}

const keyOf = (i: number) => i.toString(16).padStart(16, '0');

/** The real directory backend, counting commits (and failing them with `failWith` when set). */
class CountingBackend implements StoreBackend {
  readonly kind = 'directory';
  commits: number[] = [];
  failWith: Error | null = null;
  constructor(private readonly inner: DirectoryBackend) {}
  async commit(puts: { key: string; bytes: Uint8Array; lastUsed: number }[], deletes: string[]): Promise<void> {
    if (this.failWith && puts.length > 0) throw this.failWith;
    this.commits.push(puts.length);
    return this.inner.commit(puts, deletes);
  }
  read(key: string) { return this.inner.read(key); }
  touch(keys: string[], time: number) { return this.inner.touch(keys, time); }
  list() { return this.inner.list(); }
  close() {}
}

describe('crc32', () => {
  it('gives the standard check value', () => {
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
  });
});

describe('record identity', () => {
  const header = async (file: string) => parseGgufHeader(new Uint8Array(await readFile(modelPath(file))));

  it('tokenizer hashes: the same vocabulary in two files agrees, another vocabulary does not', async () => {
    const [f32, q8, spm] = await Promise.all(['wg-tolstoy-f32.gguf', 'wg-tolstoy-q8_0.gguf', 'wg-llama-spm-f32.gguf'].map(header));
    const [t32, t8, tspm] = await Promise.all([f32, q8, spm].map(tokenizerFingerprint));
    expect(t32).toMatch(/^[0-9a-f]{64}$/);
    expect(t8).toBe(t32);
    expect(tspm).not.toBe(t32);
    // The models differ, so their records never mix even with one tokenizer.
    expect(await modelFingerprint(f32)).not.toBe(await modelFingerprint(q8));
    const id = recordIdentity(await modelFingerprint(q8), t8, IDENTITY.layout);
    expect(() => decodeRecord(encodeRecord(id, page(keyOf(1), 1)), { ...id, modelFingerprint: IDENTITY.modelFingerprint })).toThrow(/written for model/);
    expect(() => recordIdentity('xyz', t8, IDENTITY.layout)).toThrow(/SHA-256/);
  });
});

describe('context records', () => {
  it('round-trips a page', () => {
    const rec = page(keyOf(7), 7);
    const back = decodeRecord(encodeRecord(IDENTITY, rec), IDENTITY, rec.key);
    expect(back).toEqual(rec);
  });

  it('takes about the page bytes plus a small header', () => {
    const rec = page(keyOf(1), 1);
    const payload = 2 * IDENTITY.layout.layers * storedPageBytes(IDENTITY.layout);
    // 8 header, 12 META chunk header + (38 fixed, two 8-byte hashes, 16 u16 token ids: 86, padded to 88), 12 PAGE chunk header, 12 trailer.
    expect(encodeRecord(IDENTITY, rec).length).toBe(payload + 8 + 12 + 88 + 12 + 12);
  });

  it('stores token ids of 65536 and more as i32, and a first page without a parent', () => {
    const rec = { ...page(keyOf(0), 0), tokens: Int32Array.from({ length: 16 }, (_, i) => 100_000 + i) };
    expect(rec.parent).toBeNull();
    const bytes = encodeRecord(IDENTITY, rec);
    expect(decodeRecord(bytes, IDENTITY, rec.key)).toEqual(rec);
    const payload = 2 * IDENTITY.layout.layers * storedPageBytes(IDENTITY.layout);
    expect(bytes.length).toBe(payload + 8 + 12 + (38 + 8 + 64 + 2) + 12 + 12);
  });

  it('refuses pages of the wrong size or count when encoding', () => {
    const rec = page(keyOf(1), 1);
    expect(() => encodeRecord(IDENTITY, { ...rec, k: [rec.k[0]] })).toThrow(/pages of 1 layers for a model of 2/);
    expect(() => encodeRecord(IDENTITY, { ...rec, v: [rec.v[0], rec.v[1].subarray(1)] })).toThrow(/1087 bytes, not 1088/);
    expect(() => encodeRecord(IDENTITY, { ...rec, tokens: rec.tokens.subarray(1) })).toThrow(/15 tokens for pages of 16/);
  });

  const problem = (bytes: Uint8Array, identity = IDENTITY, key?: string) => {
    try {
      decodeRecord(bytes, identity, key);
    } catch (e) {
      expect(e).toBeInstanceOf(RecordError);
      return (e as RecordError).problem;
    }
    return 'accepted';
  };

  it('refuses every truncation', () => {
    const bytes = encodeRecord(IDENTITY, page(keyOf(3), 3));
    for (let cut = 0; cut < bytes.length; cut += 7) expect(problem(bytes.subarray(0, cut)), `cut at ${cut}`).toBe('truncated');
    expect(problem(bytes.subarray(0, bytes.length - 1))).toBe('truncated');
  });

  it('refuses a flipped bit anywhere (CRC-32 per chunk, the trailer, the header)', () => {
    const bytes = encodeRecord(IDENTITY, page(keyOf(3), 3));
    const r = rng(9);
    for (let trial = 0; trial < 300; trial++) {
      const at = Math.floor(r() * bytes.length);
      const bad = bytes.slice();
      bad[at] ^= 1 << Math.floor(r() * 8);
      // Flips in a chunk's padding change nothing a reader uses; every other byte is checked.
      const result = problem(bad);
      if (result === 'accepted') expect(decodeRecord(bad, IDENTITY)).toEqual(decodeRecord(bytes, IDENTITY));
      else expect(['corrupt', 'truncated', 'magic', 'version']).toContain(result);
    }
  });

  it('refuses records of another model, tokenizer, layout, version or key', () => {
    const rec = page(keyOf(4), 4);
    const bytes = encodeRecord(IDENTITY, rec);
    expect(problem(bytes, { ...IDENTITY, modelFingerprint: 'c'.repeat(64) })).toBe('model');
    expect(problem(bytes, { ...IDENTITY, tokenizerHash: 'd'.repeat(64) })).toBe('tokenizer');
    expect(problem(bytes, { ...IDENTITY, layout: { ...IDENTITY.layout, format: 'q4_0' } })).toBe('layout');
    expect(problem(bytes, { ...IDENTITY, layout: { ...IDENTITY.layout, pageSize: 32 } })).toBe('layout');
    expect(problem(bytes, IDENTITY, keyOf(5))).toBe('key');
    const v1 = bytes.slice();
    new DataView(v1.buffer).setUint16(4, 1, true);
    expect(problem(v1)).toBe('version');
    const noMagic = bytes.slice();
    noMagic[0] = 0x58;
    expect(problem(noMagic)).toBe('magic');
  });
});

describe('context store, directory backend', () => {
  let dir: string;
  let warnings: StoreWarning[];
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'wgserve-store-'));
    warnings = [];
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  const open = async (options: { maxBytes?: number; now?: () => number } = {}, identity = IDENTITY) =>
    ContextStore.open(await DirectoryBackend.open(dir), identity, { onWarning: (w) => warnings.push(w), ...options });

  it('writes behind, in one commit per batch, and a restarted store reads the pages back', async () => {
    const backend = new CountingBackend(await DirectoryBackend.open(dir));
    const store = await ContextStore.open(backend, IDENTITY);
    const recs = [0, 1, 2, 3, 4].map((i) => page(keyOf(i), i));
    for (const r of recs) store.put(r);
    // put() returned without writing: the pages are queued, yet found.
    expect(backend.commits).toEqual([]);
    expect(store.has(keyOf(2))).toBe(true);
    expect(await store.get(keyOf(2))).toEqual(recs[2]);
    await store.flush();
    expect(backend.commits).toEqual([5]);
    expect((await readdir(dir)).sort()).toEqual(recs.map((r) => `${r.key}.wgkv`).sort());
    expect(store.metrics.pagesWritten).toBe(5);
    await store.close();

    const again = await open();
    expect(again.usage().records).toBe(5);
    for (const r of recs) expect(await again.get(r.key)).toEqual(r);
    expect(again.metrics.pagesRead).toBe(5);
    expect(await again.get(keyOf(99))).toBeNull();
    expect(warnings).toEqual([]);
  });

  it('counts records in a commit under way as pending, and finds them meanwhile', async () => {
    const backend = new CountingBackend(await DirectoryBackend.open(dir));
    let open: () => void = () => {};
    const gate = new Promise<void>((resolve) => (open = resolve));
    const commit = backend.commit.bind(backend);
    backend.commit = async (puts, deletes) => {
      await gate;
      return commit(puts, deletes);
    };
    const store = await ContextStore.open(backend, IDENTITY);
    const rec = page(keyOf(7), 7);
    store.put(rec);
    // Let the write start: the record has left the queue and is in the backend's transaction.
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(store.pendingCount).toBe(1);
    expect(store.has(rec.key)).toBe(true);
    expect(await store.get(rec.key)).toEqual(rec);
    open();
    await store.flush();
    expect(store.pendingCount).toBe(0);
    expect(store.usage().records).toBe(1);
    await store.close();
  });

  it('drops a truncated, a corrupt, a foreign and an old-version record: deleted, warned, counted, never returned', async () => {
    const store = await open();
    for (let i = 0; i < 5; i++) store.put(page(keyOf(i), i));
    await store.flush();
    const file = (i: number) => join(dir, `${keyOf(i)}.wgkv`);
    const bytes = await readFile(file(0));
    await writeFile(file(0), bytes.subarray(0, bytes.length - 20));
    const flipped = (await readFile(file(1))).slice();
    flipped[200] ^= 0x10;
    await writeFile(file(1), flipped);
    await writeFile(file(2), encodeRecord({ ...IDENTITY, modelFingerprint: 'e'.repeat(64) }, page(keyOf(2), 2)));
    const v9 = (await readFile(file(3))).slice();
    new DataView(v9.buffer, v9.byteOffset).setUint32(4, 9, true);
    await writeFile(file(3), v9);

    for (let i = 0; i < 4; i++) expect(await store.get(keyOf(i))).toBeNull();
    expect(await store.get(keyOf(4))).toEqual(page(keyOf(4), 4));
    expect(warnings.map((w) => (w.kind === 'record-dropped' ? w.problem : w.kind))).toEqual(['truncated', 'corrupt', 'model', 'version']);
    expect(store.metrics.recordsDropped).toBe(4);
    expect(await readdir(dir)).toEqual([`${keyOf(4)}.wgkv`]);
    expect(store.has(keyOf(0))).toBe(false);
  });

  it('keeps to its byte budget, evicting the least recently used records', async () => {
    let clock = 1000;
    const recordBytes = encodeRecord(IDENTITY, page(keyOf(1), 1)).length; // the largest: page 0 has no parent
    const store = await open({ maxBytes: 3 * recordBytes + 10, now: () => clock++ });
    for (let i = 0; i < 3; i++) {
      store.put(page(keyOf(i), i));
      await store.flush();
    }
    await store.get(keyOf(0)); // 0 is now the most recently used: 1 goes first
    store.put(page(keyOf(3), 3));
    await store.flush();
    expect(store.list().map((m) => m.key)).toEqual([keyOf(2), keyOf(0), keyOf(3)]);
    expect(store.usage().bytes).toBeLessThanOrEqual(store.maxBytes);
    expect(store.metrics.recordsEvicted).toBe(1);
    expect((await readdir(dir)).sort()).toEqual([0, 2, 3].map((i) => `${keyOf(i)}.wgkv`));
    // A restarted store sees the same order (the files' mtimes are their last use).
    const again = await open({ maxBytes: 3 * recordBytes + 10 });
    expect(again.list().map((m) => m.key)).toEqual([keyOf(2), keyOf(0), keyOf(3)]);
  });

  it('a full storage stops writing; reads go on', async () => {
    const backend = new CountingBackend(await DirectoryBackend.open(dir));
    const store = await ContextStore.open(backend, IDENTITY, { onWarning: (w) => warnings.push(w) });
    store.put(page(keyOf(0), 0));
    await store.flush();
    backend.failWith = Object.assign(new Error('quota'), { name: 'QuotaExceededError' });
    store.put(page(keyOf(1), 1));
    await store.flush();
    expect(warnings.map((w) => w.kind)).toEqual(['writes-stopped']);
    expect(store.usage().writing).toBe(false);
    store.put(page(keyOf(2), 2));
    await store.flush();
    expect(store.has(keyOf(2))).toBe(false);
    expect(await store.get(keyOf(0))).toEqual(page(keyOf(0), 0));
    expect(store.metrics.writeErrors).toBe(1);
  });

  it('refuses keys that are not page hashes (no paths)', async () => {
    const backend = await DirectoryBackend.open(dir);
    await expect(backend.read('../etc/passwd')).rejects.toThrow(/not a page hash/);
  });

  it('delete() and clear() remove records', async () => {
    const store = await open();
    for (let i = 0; i < 3; i++) store.put(page(keyOf(i), i));
    await store.delete([keyOf(1)]);
    expect(store.list().map((m) => m.key)).toEqual([keyOf(0), keyOf(2)]);
    await store.clear();
    expect(store.usage()).toMatchObject({ records: 0, bytes: 0 });
    expect(await readdir(dir)).toEqual([]);
  });
});
