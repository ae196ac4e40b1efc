// Context store benchmark through the engine, on a 32000-vocab SentencePiece model: a 1,009-token
// prompt (63 full pages) prefilled by an engine that writes its pages through to the store, then
// the same prompt on an engine opened afresh on that store, which restores the 63 pages (records
// read and checked, uploaded, converted into the live f16 cache on the GPU) and computes only the
// last token. Both times run from submit to the first token, after a warm-up request on each
// engine (pipelines compiled). Then the bytes the store holds per stored format against the f16
// pages they replace.
// Node (default): the engine in this process, a directory store. --browser: headless Chromium
// (WebGPU on SwiftShader), the engine in a Web Worker (bench/pages/persist.html), an IndexedDB
// store, the model served by the Vite dev server on 127.0.0.1; "afresh" is a new worker.
// Use: npm run bench:persist [-- --browser --model wg-llama-spm-f16.gguf --pages 63 --formats q8_0,q4_0,f16]
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { createEngine, GpuRuntime } from '../src/index.js';
import type { ContextStoreStats, SamplingParams } from '../src/engine/index.js';
import { kvPageBytes, parseGgufHeader, readModelConfig, type KvFormat } from '../src/model/index.js';

const { values: args } = parseArgs({ options: {
  model: { type: 'string', default: 'wg-llama-spm-f16.gguf' },
  pages: { type: 'string', default: '63' },
  formats: { type: 'string', default: 'q8_0,q4_0,f16' },
  browser: { type: 'boolean', default: false },
} });
const REPO = resolve(import.meta.dirname, '..');
const SHARED = resolve(process.env.WGSERVE_SHARED ?? join(REPO, '../shared'));
const PAGES = Number(args.pages);
const PAGE = 16;

/** One engine: one-token requests (ms from submit to the answer, cached_tokens) and its store's numbers. */
interface Bench {
  run(ids: number[]): Promise<{ ms: number; cached: number }>;
  /** Waits for the writes behind; the store's numbers. */
  settle(): Promise<ContextStoreStats>;
  close(): Promise<void>;
}

/** Opens an engine on the store `name` (a directory, or a database) in `format`. */
type Opener = (name: string, format: KvFormat) => Promise<Bench>;

interface Host {
  open: Opener;
  /** A new, empty store name for a format. */
  storeName(format: KvFormat): Promise<string>;
  where: string;
  close(): Promise<void>;
}

const params = (): SamplingParams => ({
  maxTokens: 1, temperature: 0, topK: 0, topP: 1, minP: 0, frequencyPenalty: 0, presencePenalty: 0, repetitionPenalty: 1,
  logitBias: new Map(), seed: 0, stopIds: [], stopStrings: [],
});

async function nodeHost(): Promise<Host> {
  const rt = await GpuRuntime.create();
  const model = join(SHARED, 'models', args.model);
  const dirs: string[] = [];
  return {
    where: 'Node, directory store',
    async storeName() {
      const dir = await mkdtemp(join(tmpdir(), 'wgserve-bench-persist-'));
      dirs.push(dir);
      return dir;
    },
    async open(dir, format) {
      const engine = await createEngine({ model, runtime: rt, kvFormat: 'f16', contextStore: { kind: 'directory', path: dir, format, maxBytes: 2 ** 30 } });
      return {
        async run(ids) {
          const t0 = performance.now();
          const h = engine.core!.submit(ids, params());
          for await (const e of h.events) void e;
          return { ms: performance.now() - t0, cached: h.timings.cachedTokens };
        },
        async settle() {
          await engine.core!.tier!.drain();
          return engine.metrics().contextStore!;
        },
        close: () => engine.destroy(),
      };
    },
    async close() {
      for (const d of dirs) await rm(d, { recursive: true, force: true });
      rt.destroy();
    },
  };
}

async function browserHost(): Promise<Host> {
  const { createServer } = await import('vite');
  const { launchBrowser } = await import('../test/helpers/browser.js');
  // The dev server serves the repository and, through /@fs/, the shared models (no HMR: an edit
  // to a source file while the bench runs must not reload the page).
  const server = await createServer({ root: REPO, configFile: join(REPO, 'vite.config.ts'), logLevel: 'error', server: { port: 0, host: '127.0.0.1', hmr: false, fs: { allow: [REPO, SHARED] } } });
  await server.listen();
  const addr = server.httpServer?.address();
  const origin = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  const browser = await launchBrowser();
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on('console', (m) => m.type() === 'error' && console.error(`page: ${m.text()}`));
  await page.goto(`${origin}/bench/pages/persist.html`);
  await page.waitForFunction(() => document.getElementById('status')?.textContent === 'ready');
  const modelUrl = `${origin}/@fs${join(SHARED, 'models', args.model)}`;
  let n = 0;
  return {
    where: 'headless Chromium, Web Worker engine, IndexedDB store',
    storeName: async (format) => `wgserve-bench-${format}-${n++}`,
    async open(database, format) {
      await page.evaluate(([u, f, d]) => window.bp.open(u, f, d), [modelUrl, format, database] as const);
      return {
        run: (ids) => page.evaluate(([i]) => window.bp.run(i), [ids] as const),
        settle: () => page.evaluate(() => window.bp.settle()),
        close: () => page.evaluate(() => window.bp.close()),
      };
    },
    async close() {
      await browser.close();
      await server.close();
    },
  };
}

async function main(): Promise<void> {
  const host = args.browser ? await browserHost() : await nodeHost();
  const ids = (seed: number) => [1, ...Array.from({ length: PAGES * PAGE }, (_, i) => 3 + ((i * 7919 + seed * 104729) % 31990))];
  const prompt = ids(0);
  const formats = args.formats.split(',') as KvFormat[];
  try {
    let prefill = 0;
    let restore = 0;
    const f16Bytes = await f16PagesBytes();
    const rows: string[] = [];
    for (const format of formats) {
      const name = await host.storeName(format);
      const writer = await host.open(name, format);
      await writer.run(ids(1).slice(0, 40));
      const computed = await writer.run(prompt);
      // The store holds the warm-up's 2 pages too: bytes per record count them all.
      const { records, bytes } = await writer.settle();
      await writer.close();
      const reader = await host.open(name, format);
      await reader.run(ids(2).slice(0, 40));
      const restored = await reader.run(prompt);
      const s = await reader.settle();
      await reader.close();
      if (restored.cached !== PAGES * PAGE || s.pagesRestored !== PAGES) throw new Error(`${format}: ${restored.cached} tokens cached, ${s.pagesRestored} pages restored; expected ${PAGES * PAGE} and ${PAGES}`);
      const perPage = bytes / records;
      rows.push(`| ${format} | ${records} | ${perPage.toFixed(0)} | ${((perPage * PAGES) / f16Bytes).toFixed(3)}x | ${restored.ms.toFixed(0)} ms | ${(restored.ms / computed.ms).toFixed(3)}x |`);
      if (format === 'q8_0' || !prefill) {
        prefill = computed.ms;
        restore = restored.ms;
      }
      console.log(`${format}: prefill ${computed.ms.toFixed(0)} ms, restore ${restored.ms.toFixed(0)} ms (${restored.cached} tokens restored), ${records} records of ${perPage.toFixed(0)} bytes`);
    }
    console.log(`\n${host.where}; model ${args.model}, prompt ${prompt.length} tokens (${PAGES} full pages of ${PAGE}), live KV f16, f16 pages ${f16Bytes} bytes`);
    console.log('| stored format | records | bytes per record | bytes / f16 pages | restore (submit to token) | restore / prefill |');
    console.log('|---|---|---|---|---|---|');
    for (const r of rows) console.log(r);
    console.log(`\nprefill (submit to token): ${prefill.toFixed(0)} ms; restore from ${formats.includes('q8_0') ? 'q8_0' : formats[0]} records: ${restore.toFixed(0)} ms = ${(restore / prefill).toFixed(3)}x`);
  } finally {
    await host.close();
  }
}

/** Bytes of PAGES f16 pages (K and V of every layer) of the model, from its GGUF header. */
async function f16PagesBytes(): Promise<number> {
  const bytes = new Uint8Array(await readFile(join(SHARED, 'models', args.model)));
  const c = readModelConfig(parseGgufHeader(bytes, args.model, bytes.length));
  return PAGES * 2 * c.layerCount * kvPageBytes({ pageSize: PAGE, numKvHeads: c.kvHeadCount, headDim: c.headDim, format: 'f16' });
}

await main();
