// Context store benchmark through the engine (Node, directory backend), on a 32000-vocab
// SentencePiece model: a 1,009-token prompt (63 full pages) prefilled by an engine that writes
// its pages through to the store, then the same prompt on an engine opened afresh on that
// directory, which restores the 63 pages (records read and checked, uploaded, converted into the
// live f16 cache on the GPU) and computes only the last token. Both times run from submit to the
// first token, after a warm-up request on each engine (pipelines compiled). Then the bytes the
// store holds per stored format against the f16 pages they replace.
// Use: npm run bench:persist [-- --model wg-llama-spm-f16.gguf --pages 63 --formats q8_0,q4_0,f16]
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createEngine, GpuRuntime, type Engine } from '../src/index.js';
import type { SamplingParams } from '../src/engine/index.js';
import { kvPageBytes, type KvFormat } from '../src/model/index.js';

const { values: args } = parseArgs({ options: {
  model: { type: 'string', default: 'wg-llama-spm-f16.gguf' },
  pages: { type: 'string', default: '63' },
  formats: { type: 'string', default: 'q8_0,q4_0,f16' },
} });
const SHARED = process.env.WGSERVE_SHARED ?? join(import.meta.dirname, '../../shared');
const PAGES = Number(args.pages);
const PAGE = 16;

const params = (): SamplingParams => ({
  maxTokens: 1, temperature: 0, topK: 0, topP: 1, minP: 0, frequencyPenalty: 0, presencePenalty: 0, repetitionPenalty: 1,
  logitBias: new Map(), seed: 0, stopIds: [], stopStrings: [],
});

/** Submit to finish of a one-token request; returns ms and the prompt tokens taken from the cache. */
async function timed(engine: Engine, ids: number[]): Promise<{ ms: number; cached: number }> {
  const t0 = performance.now();
  const h = engine.core!.submit(ids, params());
  for await (const e of h.events) void e;
  return { ms: performance.now() - t0, cached: h.timings.cachedTokens };
}

async function dirBytes(dir: string): Promise<{ files: number; bytes: number }> {
  const names = (await readdir(dir)).filter((n) => n.endsWith('.wgkv'));
  let bytes = 0;
  for (const n of names) bytes += (await stat(join(dir, n))).size;
  return { files: names.length, bytes };
}

async function main(): Promise<void> {
  const rt = await GpuRuntime.create();
  const model = join(SHARED, 'models', args.model);
  const open = (dir: string, format: KvFormat) => createEngine({ model, runtime: rt, kvFormat: 'f16', contextStore: { kind: 'directory', path: dir, format, maxBytes: 2 ** 30 } });
  const ids = (seed: number) => [1, ...Array.from({ length: PAGES * PAGE }, (_, i) => 3 + ((i * 7919 + seed * 104729) % 31990))];
  const prompt = ids(0);
  const formats = args.formats.split(',') as KvFormat[];
  const dirs: string[] = [];
  try {
    let prefill = 0;
    let restore = 0;
    let f16Bytes = 0;
    const rows: string[] = [];
    for (const format of formats) {
      const dir = await mkdtemp(join(tmpdir(), 'wgserve-bench-persist-'));
      dirs.push(dir);
      const writer = await open(dir, format);
      const c = writer.model!.config;
      f16Bytes = PAGES * 2 * c.layerCount * kvPageBytes({ pageSize: PAGE, numKvHeads: c.kvHeadCount, headDim: c.headDim, format: 'f16' });
      await timed(writer, ids(1).slice(0, 40));
      const computed = await timed(writer, prompt);
      await writer.destroy(); // waits for the writes behind
      const reader = await open(dir, format);
      await timed(reader, ids(2).slice(0, 40));
      const restored = await timed(reader, prompt);
      const s = reader.metrics().contextStore!;
      await reader.destroy();
      if (restored.cached !== PAGES * PAGE || s.pagesRestored !== PAGES) throw new Error(`${format}: ${restored.cached} tokens cached, ${s.pagesRestored} pages restored; expected ${PAGES * PAGE} and ${PAGES}`);
      // The store holds the warm-up's pages too (2 of them): count the prompt's.
      const { files, bytes } = await dirBytes(dir);
      const perPage = bytes / files;
      rows.push(`| ${format} | ${files} | ${perPage.toFixed(0)} | ${((perPage * PAGES) / f16Bytes).toFixed(3)}x | ${restored.ms.toFixed(0)} ms | ${(restored.ms / computed.ms).toFixed(3)}x |`);
      if (format === 'q8_0' || !prefill) {
        prefill = computed.ms;
        restore = restored.ms;
      }
      console.log(`${format}: prefill ${computed.ms.toFixed(0)} ms, restore ${restored.ms.toFixed(0)} ms (${restored.cached} tokens restored), ${files} records of ${perPage.toFixed(0)} bytes`);
    }
    console.log(`\nmodel ${args.model}, prompt ${prompt.length} tokens (${PAGES} full pages of ${PAGE}), live KV f16, f16 pages ${f16Bytes} bytes`);
    console.log('| stored format | records | bytes per record | bytes / f16 pages | restore (submit to token) | restore / prefill |');
    console.log('|---|---|---|---|---|---|');
    for (const r of rows) console.log(r);
    console.log(`\nprefill (submit to token): ${prefill.toFixed(0)} ms; restore from q8_0 records: ${restore.toFixed(0)} ms = ${(restore / prefill).toFixed(3)}x`);
  } finally {
    for (const d of dirs) await rm(d, { recursive: true, force: true });
    rt.destroy();
  }
}

await main();
