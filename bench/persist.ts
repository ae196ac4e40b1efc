// Context store benchmark (Node, directory backend), before the prefix-cache integration:
// a 1,008-token context (63 pages) prefilled on a 32000-vocab SentencePiece model, against the
// same context restored from the store by a store opened afresh (every record read and checked,
// uploaded and converted into the live f16 cache on the GPU). Prints both times and their ratio,
// and the bytes stored per format against f16 pages.
// Use: npm run bench:persist [-- --model wg-llama-spm-f16.gguf --pages 63]
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { GpuRuntime } from '../src/gpu/index.js';
import { KvCache } from '../src/kv/index.js';
import { tokenizerFingerprint } from '../src/model/fingerprint.js';
import { ForwardPass, kvPageBytes, Model, type Batch } from '../src/model/index.js';
import { compressKvPages, restoreKvPages, type StoredPageFormat } from '../src/model/kernels/kv-transfer.js';
import { ContextStore, type PageRecord } from '../src/persist/index.js';
import { DirectoryBackend } from '../src/persist/directory-backend.js';
import { recordIdentity, type StoredLayout } from '../src/persist/record.js';

const { values: args } = parseArgs({ options: { model: { type: 'string', default: 'wg-llama-spm-f16.gguf' }, pages: { type: 'string', default: '63' } } });
const SHARED = process.env.WGSERVE_SHARED ?? join(import.meta.dirname, '../../shared');
const PAGES = Number(args.pages);
const CHUNK = 512;

function prefillBatch(tokens: number[], from: number, to: number, pages: number[], pageSize: number): Batch {
  const ids = tokens.slice(from, to);
  return {
    tokenIds: Int32Array.from(ids),
    positions: Int32Array.from(ids, (_, i) => from + i),
    seqStarts: Int32Array.from([0, ids.length]),
    contextLens: Int32Array.from([to]),
    blockTables: Int32Array.from(pages),
    maxBlocksPerSeq: pages.length,
    slotMapping: Int32Array.from(ids, (_, i) => pages[Math.floor((from + i) / pageSize)] * pageSize + ((from + i) % pageSize)),
    sampleRows: Int32Array.from([ids.length - 1]),
  };
}

async function main(): Promise<void> {
  const rt = await GpuRuntime.create();
  const model = await Model.load(rt, join(SHARED, 'models', args.model));
  const forward = new ForwardPass(model);
  const kv = KvCache.create(rt, model.config, { maxPages: 2 * PAGES + 2, memoryBytes: 1 << 30, format: 'f16' });
  const pageSize = kv.pageSize;
  const tokens = Array.from({ length: PAGES * pageSize }, (_, i) => 1 + ((i * 7919) % (model.config.vocabSize - 1)));
  const pages = kv.pool.allocate(PAGES)!;
  const target = kv.pool.allocate(PAGES)!;

  // Warm-up (pipelines compiled), then the timed prefill.
  await forward.logits(prefillBatch(tokens, 0, 16, pages, pageSize), kv);
  const t0 = performance.now();
  for (let from = 0; from < tokens.length; from += CHUNK) await forward.logits(prefillBatch(tokens, from, Math.min(from + CHUNK, tokens.length), pages, pageSize), kv);
  const prefillMs = performance.now() - t0;

  const dir = await mkdtemp(join(tmpdir(), 'wgserve-bench-persist-'));
  const stored: StoredPageFormat = { format: 'q8_0' };
  const layout: StoredLayout = { layers: model.config.layerCount, numKvHeads: model.config.kvHeadCount, headDim: model.config.headDim, pageSize, format: 'q8_0' };
  const identity = recordIdentity(model.fingerprint, await tokenizerFingerprint(model.header), layout);
  const keyOf = (i: number) => i.toString(16).padStart(16, '0');
  try {
    const writer = await ContextStore.open(await DirectoryBackend.open(dir), identity, { maxBytes: 2 ** 30 });
    const compressed = await compressKvPages(rt, kv.layout, kv, pages, stored);
    compressed.forEach((bytes, i) => {
      const record: PageRecord = { key: keyOf(i), parent: i === 0 ? null : keyOf(i - 1), tokens: Int32Array.from(tokens.slice(i * pageSize, (i + 1) * pageSize)), ...bytes };
      writer.put(record);
    });
    await writer.close();

    // Restore warm-up on the pipelines, then the timed restore by a store opened afresh.
    await restoreKvPages(rt, kv.layout, kv, [target[0]], stored, [compressed[0]]);
    const t1 = performance.now();
    const reader = await ContextStore.open(await DirectoryBackend.open(dir), identity, { maxBytes: 2 ** 30 });
    const records = await Promise.all(Array.from({ length: PAGES }, (_, i) => reader.get(keyOf(i))));
    if (records.some((r) => r === null)) throw new Error('a record did not come back');
    await restoreKvPages(rt, kv.layout, kv, target, stored, records.map((r) => ({ k: r!.k, v: r!.v })));
    const restoreMs = performance.now() - t1;
    const recordBytes = reader.usage().bytes;

    const f16Bytes = PAGES * 2 * model.config.layerCount * kvPageBytes({ pageSize, numKvHeads: model.config.kvHeadCount, headDim: model.config.headDim, format: 'f16' });
    const q4Bytes = PAGES * 2 * model.config.layerCount * kvPageBytes({ pageSize, numKvHeads: model.config.kvHeadCount, headDim: model.config.headDim, format: 'q4_0' });
    console.log(`model ${args.model}, ${tokens.length} tokens (${PAGES} pages of ${pageSize})`);
    console.log(`prefill:  ${prefillMs.toFixed(0)} ms`);
    console.log(`restore:  ${restoreMs.toFixed(0)} ms (open the store, read and check ${PAGES} records, upload, q8_0 -> f16 on the GPU)`);
    console.log(`restore / prefill: ${(restoreMs / prefillMs).toFixed(3)}x`);
    console.log(`stored bytes, q8_0 records: ${recordBytes} = ${(recordBytes / f16Bytes).toFixed(3)}x of f16 pages (${f16Bytes}); q4_0 pages would be ${(q4Bytes / f16Bytes).toFixed(3)}x`);
  } finally {
    await rm(dir, { recursive: true, force: true });
    forward.destroy();
    kv.destroy();
    model.destroy();
    rt.destroy();
  }
}

await main();
