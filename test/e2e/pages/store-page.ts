// Test page: the context store on IndexedDB (test/e2e/context-store.test.ts drives the functions
// on window through Playwright; records are made from seeds so every tab makes the same ones).
import { openDB } from 'idb';
import { ContextStore, encodeRecord, IndexedDbBackend, type PageRecord, type RecordIdentity, type StoreWarning } from '../../../src/persist/index.js';
import { storedPageBytes } from '../../../src/persist/record.js';

const IDENTITY: RecordIdentity = {
  modelFingerprint: 'f'.repeat(64),
  tokenizerHash: '1'.repeat(64),
  layout: { layers: 2, numKvHeads: 2, headDim: 32, pageSize: 16, format: 'q8_0' },
};

function keyOf(i: number): string {
  return i.toString(16).padStart(16, '0');
}

/** Page i, the same in every tab. */
function page(i: number): PageRecord {
  let s = i * 2654435761 + 1;
  const next = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 16) & 0xff;
  const bytes = () => Uint8Array.from({ length: storedPageBytes(IDENTITY.layout) }, next);
  return {
    key: keyOf(i),
    parent: i === 0 ? null : keyOf(i - 1),
    tokens: Int32Array.from({ length: 16 }, (_, j) => i * 16 + j),
    k: [bytes(), bytes()],
    v: [bytes(), bytes()],
  };
}

function same(a: PageRecord, b: PageRecord): boolean {
  const bytes = (r: PageRecord) => encodeRecord(IDENTITY, r);
  const x = bytes(a), y = bytes(b);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

let store: ContextStore | null = null;
const warnings: StoreWarning[] = [];

declare global {
  interface Window {
    st: {
      open(maxBytes?: number): Promise<void>;
      put(from: number, to: number): Promise<void>;
      /** For each page i in [from, to): 'ok' (stored and identical), 'missing', or 'different'. */
      check(from: number, to: number): Promise<string[]>;
      corrupt(i: number, at: number): Promise<void>;
      usage(): { records: number; bytes: number; maxBytes: number; writing: boolean };
      keys(): string[];
      warnings(): string[];
      metrics(): Record<string, number>;
      clear(): Promise<void>;
      /** Keeps pages [from, to) as one context; returns its id. */
      keep(from: number, to: number): Promise<string>;
      release(id: string): Promise<boolean>;
      kept(): string[];
    };
  }
}

window.st = {
  async open(maxBytes) {
    await store?.close();
    store = await ContextStore.open(await IndexedDbBackend.open(), IDENTITY, { maxBytes, onWarning: (w) => warnings.push(w) });
  },
  async put(from, to) {
    for (let i = from; i < to; i++) store!.put(page(i));
    await store!.flush();
  },
  async check(from, to) {
    const out: string[] = [];
    for (let i = from; i < to; i++) {
      const got = await store!.get(keyOf(i));
      out.push(got === null ? 'missing' : same(got, page(i)) ? 'ok' : 'different');
    }
    return out;
  },
  async corrupt(i, at) {
    const db = await openDB('wgserve-contexts');
    const bytes = (await db.get('records', keyOf(i))) as Uint8Array;
    const bad = bytes.slice();
    bad[at] ^= 0x40;
    await db.put('records', bad, keyOf(i));
    db.close();
  },
  usage: () => store!.usage(),
  keys: () => store!.list().map((m) => m.key),
  warnings: () => warnings.map((w) => (w.kind === 'record-dropped' ? `${w.kind}:${w.problem}` : w.kind)),
  metrics: () => ({ ...store!.metrics }),
  async clear() {
    await store!.clear();
  },
  async keep(from, to) {
    const keys = Array.from({ length: to - from }, (_, i) => keyOf(from + i));
    await store!.keep({ id: keys.at(-1)!, keys, tokens: 16 * keys.length, keptAt: Date.now() });
    return keys.at(-1)!;
  },
  release: (id) => store!.release(id),
  kept: () => store!.kept().map((k) => k.id),
};
document.getElementById('status')!.textContent = 'ready';
