// Kernel benchmark: bytes moved per second by each kernel as a ratio to a plain copy kernel
// on the same device in the same run (how close to the memory-bandwidth bound it runs), the
// batched GEMV against one-row-at-a-time, and decode tokens/s of the shipped model.
// Use: npm run bench            (prints a markdown table; see bench/RESULTS.md)
import { fileURLToPath } from 'node:url';
import { generate } from '../src/engine/generate.js';
import { GpuRuntime } from '../src/gpu/index.js';
import { KvCache } from '../src/kv/index.js';
import { GgmlType } from '../src/model/gguf.js';
import { ForwardPass, Model } from '../src/model/index.js';
import { attention } from '../src/model/kernels/attention.js';
import { matmul, uploadWeight, type GpuWeight } from '../src/model/kernels/matmul.js';
import { BatchBuffers, type Batch } from '../src/model/batch.js';
import { kvBufferBytes, writeKv, type KvLayout } from '../src/model/kernels/kv.js';
import { quantizeQ4_0, quantizeQ8_0 } from '../src/model/quantize.js';

const rt = await GpuRuntime.create({ log: (l) => console.error(l) });
const rows: string[][] = [];
const line = (...cells: (string | number)[]) => rows.push(cells.map(String));

/** Median seconds of one call of `record` (recorded `reps` times in one submission). */
async function time(record: () => void, reps = 8, trials = 5): Promise<number> {
  record();
  await rt.sync();
  const samples: number[] = [];
  for (let t = 0; t < trials; t++) {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) record();
    await rt.sync();
    samples.push((performance.now() - t0) / 1000 / reps);
  }
  return samples.sort((a, b) => a - b)[Math.floor(samples.length / 2)];
}

function randomF32(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = (s / 2 ** 32) * 2 - 1;
  }
  return out;
}

function weight(type: GgmlType, n: number, k: number): { w: GpuWeight; bytes: number } {
  const values = randomF32(n * k, n + k + type);
  let bytes: Uint8Array;
  if (type === GgmlType.F32) bytes = new Uint8Array(values.buffer);
  else if (type === GgmlType.Q8_0) bytes = quantizeQ8_0(values);
  else if (type === GgmlType.Q4_0) bytes = quantizeQ4_0(values);
  else throw new Error(`bench has no quantizer for type ${type}`);
  return { w: uploadWeight(rt, `bench.${type}`, type, [k, n], bytes), bytes: bytes.byteLength };
}

// ---- copy: the bandwidth baseline ----
const COPY_BYTES = 16 << 20;
const src = rt.buffers.create('bench.src', COPY_BYTES);
const dst = rt.buffers.create('bench.dst', COPY_BYTES);
const vec4s = COPY_BYTES / 16;
const copyGroups = Math.ceil(vec4s / 256);
const copyS = await time(() => rt.dispatch({ shader: 'util', entryPoint: 'copy_vec4' }, new Uint32Array([vec4s, 0, 0, 0]),
  [src, dst], [Math.min(copyGroups, 65535), Math.ceil(copyGroups / 65535)]));
const copyBw = (2 * COPY_BYTES) / copyS;
line('copy (baseline)', '16 MiB', (copyBw / 1e9).toFixed(2), '1.00', '');

const ratio = (bytes: number, s: number) => (bytes / s / copyBw).toFixed(2);

// ---- matmul: GEMV (decode) and GEMM (prefill) per weight type ----
const N = 2048;
const K = 2048;
for (const type of [GgmlType.F32, GgmlType.Q8_0, GgmlType.Q4_0]) {
  const { w, bytes } = weight(type, N, K);
  const x = rt.buffers.createWith('bench.x', randomF32(64 * K, 3));
  const y = rt.buffers.create('bench.y', 64 * N * 4);
  const name = GgmlType[type];
  const s1 = await time(() => matmul(rt, w, x, y, 1));
  line(`GEMV ${name} m=1`, `${N}x${K}`, (bytes / s1 / 1e9).toFixed(2), ratio(bytes + K * 4 + N * 4, s1), '');
  const s8 = await time(() => matmul(rt, w, x, y, 8));
  const s8single = await time(() => { for (let r = 0; r < 8; r++) matmul(rt, w, { buffer: x, offset: r * K * 4, size: K * 4 }, { buffer: y, offset: r * N * 4, size: N * 4 }, 1); }, 2);
  line(`GEMV ${name} m=8`, `${N}x${K}`, (bytes / s8 / 1e9).toFixed(2), ratio(bytes + 8 * (K + N) * 4, s8), `${(s8single / s8).toFixed(2)}x vs 8 x m=1`);
  const s64 = await time(() => matmul(rt, w, x, y, 64), 2);
  line(`GEMM ${name} m=64`, `${N}x${K}`, (bytes / s64 / 1e9).toFixed(2), ratio(bytes + 64 * (K + N) * 4, s64), `${((2 * 64 * N * K) / s64 / 1e9).toFixed(1)} GFLOP/s`);
  for (const b of [w.buffer, x, y]) { rt.forget(b); rt.buffers.destroy(b); }
}

// ---- paged attention: decode (one token per sequence, long context) ----
{
  const heads = 8;
  const layout: KvLayout = { numPages: 512, pageSize: 16, numKvHeads: 2, headDim: 64, format: 'f16' };
  const seqs = 8;
  const context = 1024;
  const pagesPerSeq = context / layout.pageSize;
  const kCache = rt.buffers.create('bench.k', kvBufferBytes(layout));
  const vCache = rt.buffers.create('bench.v', kvBufferBytes(layout));
  const batch: Batch = {
    tokenIds: new Int32Array(seqs),
    positions: new Int32Array(seqs).fill(context - 1),
    seqStarts: Int32Array.from({ length: seqs + 1 }, (_, i) => i),
    contextLens: new Int32Array(seqs).fill(context),
    blockTables: Int32Array.from({ length: seqs * pagesPerSeq }, (_, i) => i),
    maxBlocksPerSeq: pagesPerSeq,
    slotMapping: Int32Array.from({ length: seqs }, (_, s) => (s * pagesPerSeq + pagesPerSeq - 1) * 16 + 15),
    sampleRows: Int32Array.from({ length: seqs }, (_, i) => i),
  };
  const bb = new BatchBuffers(rt);
  bb.upload(batch);
  const q = rt.buffers.createWith('bench.q', randomF32(seqs * heads * 64, 5));
  const kv = rt.buffers.createWith('bench.kvrow', randomF32(seqs * 2 * 64, 6));
  const out = rt.buffers.create('bench.attn', seqs * heads * 64 * 4);
  writeKv(rt, layout, kv, kv, bb.slotMapping, kCache, vCache, seqs);
  const s = await time(() => attention(rt, {
    layout, q, kCache, vCache, out, batch: bb, maxBlocksPerSeq: pagesPerSeq, tokens: seqs, seqs, heads, maxContext: context, maxQueryLen: 1,
  }));
  const bytes = seqs * context * layout.numKvHeads * layout.headDim * 2 * 2; // K and V, f16
  line('attention decode f16 KV', `${seqs} seqs x ${context} ctx`, (bytes / s / 1e9).toFixed(2), ratio(bytes, s), '');
}

// ---- the shipped model: decode tokens/s ----
{
  const model = await Model.load(rt, fileURLToPath(new URL('../models/wg-tolstoy-q8_0.gguf', import.meta.url)));
  const forward = new ForwardPass(model);
  const kvCache = KvCache.create(rt, model.config);
  const promptIds = model.tokenizer.encode('Prince Andrew looked at');
  const run = async (n: number) => {
    const t0 = performance.now();
    const results = await generate(forward, kvCache, Array.from({ length: n }, () => ({ promptIds, maxTokens: 64 })), { contextLength: model.config.contextLength });
    return results.reduce((a, r) => a + r.tokens.length, 0) / ((performance.now() - t0) / 1000);
  };
  await run(1);
  const one = await run(1);
  const eight = await run(8);
  line('wg-tolstoy-q8_0 decode, 1 sequence', '64 tokens', '', '', `${one.toFixed(1)} tokens/s`);
  line('wg-tolstoy-q8_0 decode, 8 sequences', '8 x 64 tokens', '', '', `${eight.toFixed(1)} tokens/s (${(eight / one).toFixed(2)}x)`);
  forward.destroy();
  kvCache.destroy();
  model.destroy();
}

const a = rt.gpu.adapter;
console.log(`device: ${[a.vendor, a.architecture, a.description].filter(Boolean).join(' ')}${a.isSoftware ? ' (software)' : ''}\n`);
console.log('| kernel | shape | GB/s | ratio to copy | notes |\n|---|---|---|---|---|');
for (const r of rows) console.log(`| ${r.join(' | ')} |`);
rt.destroy();
