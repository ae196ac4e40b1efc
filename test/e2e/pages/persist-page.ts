// Test page: the engine in a Web Worker with its default context store (IndexedDB), driven by
// test/e2e/persist.test.ts: chat turns, waiting for pages to be written, corrupting records in
// the database as a broken disk or a bug would, keeping a conversation (engine.contexts.keep).
import { openDB } from 'idb';
import { createWorkerEngine, type WorkerEngine } from '../../../src/browser/index.js';
import type { EngineMetricsSnapshot } from '../../../src/engine/index.js';

const MODEL_URL = new URL('../../../models/wg-tolstoy-q8_0.gguf', import.meta.url).href;

export interface Message {
  role: 'user' | 'assistant';
  content: string;
}

export interface Turn {
  content: string;
  tokens: string[];
  logprobs: number[][];
  prompt: number;
  cached: number;
}

declare global {
  interface Window {
    ps: {
      engine: WorkerEngine | null;
      load(): Promise<string>;
      chat(messages: Message[], salt?: string): Promise<Turn>;
      /** Resolves once every filled page is in the store (the app would not wait: a reload may cut the last ones). */
      settle(): Promise<number>;
      metrics(): Promise<EngineMetricsSnapshot>;
      promptTokens(messages: Message[]): Promise<number[]>;
      /** Flips a byte in the PAGE chunk of every record whose token ids are `tokens` (v2 records: ids after the hashes in META); returns how many. */
      corruptRecordsOf(tokens: number[]): Promise<number>;
      estimate(): Promise<StorageEstimate>;
      /** engine.contexts.keep of a conversation; returns its id and tokens. */
      keep(messages: Message[], salt?: string): Promise<{ id: string; tokens: number }>;
      /** Ids of the contexts kept, and how many records list() flags as kept. */
      kept(): Promise<{ ids: string[]; records: number }>;
    };
  }
}

window.ps = {
  engine: null,
  async load() {
    const worker = new Worker(new URL('../../../workers/engine.worker.ts', import.meta.url), { type: 'module' });
    window.ps.engine = await createWorkerEngine({ worker, model: MODEL_URL, kvFormat: 'q8_0' });
    return window.ps.engine.modelId ?? '';
  },
  async chat(messages, salt) {
    const r = await window.ps.engine!.chat.completions.create({ messages, temperature: 0, max_tokens: 12, logprobs: true, top_logprobs: 2, cache_salt: salt });
    const content = r.choices[0].logprobs!.content!;
    return {
      content: r.choices[0].message.content ?? '',
      tokens: content.map((t) => t.token),
      logprobs: content.map((t) => [t.logprob, ...t.top_logprobs.map((a) => a.logprob)]),
      prompt: r.usage.prompt_tokens,
      cached: r.usage.prompt_tokens_details?.cached_tokens ?? 0,
    };
  },
  async settle() {
    for (;;) {
      const s = (await window.ps.engine!.metrics()).contextStore!;
      if (s.pendingWrites === 0) return s.records;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  },
  metrics: () => window.ps.engine!.metrics(),
  async promptTokens(messages) {
    return (await window.ps.engine!.tokenize({ messages })).tokens;
  },
  estimate: () => navigator.storage.estimate(),
  async keep(messages, salt) {
    const k = await window.ps.engine!.contexts.keep({ messages, cache_salt: salt });
    return { id: k.id, tokens: k.tokens };
  },
  async kept() {
    const e = window.ps.engine!;
    return { ids: (await e.contexts.kept()).map((k) => k.id), records: (await e.contexts.list()).filter((r) => r.kept).length };
  },
  async corruptRecordsOf(tokens) {
    const db = await openDB('wgserve-contexts');
    let count = 0;
    try {
      for (const key of await db.getAllKeys('records')) {
        const bytes = (await db.get('records', key)) as Uint8Array;
        const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
        const meta = 20; // 8-byte header, then META's 12-byte chunk header
        const at = meta + 38 + bytes[meta + 34] + bytes[meta + 35];
        if (bytes[meta + 33] !== 2 || tokens.some((t, i) => view.getUint16(at + 2 * i, true) !== t)) continue;
        const bad = bytes.slice();
        bad[bad.length - 100] ^= 0x40;
        await db.put('records', bad, key);
        count++;
      }
      return count;
    } finally {
      db.close();
    }
  },
};
document.getElementById('status')!.textContent = 'ready';
