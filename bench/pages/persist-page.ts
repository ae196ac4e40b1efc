// Bench page for `npm run bench:persist -- --browser` (bench/persist.ts drives it through
// Playwright): the engine in a Web Worker with an IndexedDB context store, one-token requests
// timed from the page (submit to the answer), and the store's numbers.
import { createWorkerEngine, type WorkerEngine } from '../../src/browser/index.js';
import type { ContextStoreStats } from '../../src/engine/index.js';
import type { KvFormat } from '../../src/model/index.js';

declare global {
  interface Window {
    bp: {
      /** A new worker and engine on `modelUrl`, its context store in the database `database`. */
      open(modelUrl: string, format: KvFormat, database: string): Promise<void>;
      /** A one-token greedy request on `ids`: ms from submit to the answer, and cached_tokens. */
      run(ids: number[]): Promise<{ ms: number; cached: number }>;
      /** Waits until every filled page is written; returns the store's numbers. */
      settle(): Promise<ContextStoreStats>;
      close(): Promise<void>;
    };
  }
}

let engine: WorkerEngine | null = null;

window.bp = {
  async open(modelUrl, format, database) {
    const worker = new Worker(new URL('../../workers/engine.worker.ts', import.meta.url), { type: 'module' });
    engine = await createWorkerEngine({ worker, model: modelUrl, kvFormat: 'f16', contextStore: { kind: 'indexeddb', path: database, format, maxBytes: 2 ** 30 } });
  },
  async run(ids) {
    const t0 = performance.now();
    const r = await engine!.completions.create({ prompt: ids, max_tokens: 1, temperature: 0 });
    return { ms: performance.now() - t0, cached: r.usage?.prompt_tokens_details?.cached_tokens ?? 0 };
  },
  async settle() {
    for (;;) {
      const s = (await engine!.metrics()).contextStore!;
      if (s.pendingWrites === 0) return s;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  },
  async close() {
    await engine?.terminate();
    engine = null;
  },
};
document.getElementById('status')!.textContent = 'ready';
