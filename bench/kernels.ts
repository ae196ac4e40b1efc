// Kernel benchmark: bytes moved per second by each kernel as a ratio to a plain copy kernel
// on the same device in the same run (how close to the memory-bandwidth bound it runs), GEMV
// over 1, 8 and 16 rows for every weight type (weights read once: on a GPU the 16-row time should
// stay near the 1-row time), both kernel sets side by side, and decode tokens/s of the shipped
// model and of a Q4_K_M model under both sets.
// Use: npm run bench [-- --only matmul|attention|models]   (prints a markdown table; see bench/RESULTS.md)
import { fileURLToPath } from 'node:url';
import { generate } from '../src/engine/generate.js';
import { GpuRuntime } from '../src/gpu/index.js';
import { KvCache } from '../src/kv/index.js';
import { GgmlType } from '../src/model/gguf.js';
import { ForwardPass, Model, type Numerics } from '../src/model/index.js';
import { attention } from '../src/model/kernels/attention.js';
import { matmul, uploadWeight, type GpuWeight } from '../src/model/kernels/matmul.js';
import { BatchBuffers, type Batch } from '../src/model/batch.js';
import { kvBufferBytes, writeKv, type KvLayout } from '../src/model/kernels/kv.js';
import { quantize, randomKQuant } from '../src/model/quantize.js';

const rt = await GpuRuntime.create({ log: (l) => console.error(l) });
const only = process.argv[process.argv.indexOf('--only') + 1];
/** Whether a section runs: all of them unless --only names one. */
const section = (name: string) => !process.argv.includes('--only') || only === name;
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
  let seed = n + k + type;
  const random = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32);
  const bytes = type === GgmlType.Q4_K || type === GgmlType.Q6_K
    ? randomKQuant(type, (n * k) / 256, random)
    : quantize(type, randomF32(n * k, seed));
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

// ---- matmul per weight type, both kernel sets: decode rows (1, 8, 16) and a prompt (64) ----
const N = 2048;
const K = 2048;
const TYPES = [GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q4_K, GgmlType.Q6_K];
for (const type of section('matmul') ? TYPES : []) {
  const { w, bytes } = weight(type, N, K);
  const x = rt.buffers.createWith('bench.x', randomF32(64 * K, 3));
  const y = rt.buffers.create('bench.y', 64 * N * 4);
  const name = GgmlType[type];
  for (const numerics of ['fast', 'llama.cpp'] as const) {
    const opts = { numerics };
    const s1 = await time(() => matmul(rt, w, x, y, 1, opts));
    line(`${numerics} ${name} m=1`, `${N}x${K}`, (bytes / s1 / 1e9).toFixed(2), ratio(bytes + K * 4 + N * 4, s1), '');
    for (const m of [8, 16]) {
      const sm = await time(() => matmul(rt, w, x, y, m, opts), 2);
      line(`${numerics} ${name} m=${m}`, `${N}x${K}`, (bytes / sm / 1e9).toFixed(2), ratio(bytes + m * (K + N) * 4, sm), `${(sm / s1).toFixed(2)}x the m=1 time (${m} rows)`);
    }
    const s64 = await time(() => matmul(rt, w, x, y, 64, opts), 1, 3);
    line(`${numerics} ${name} m=64`, `${N}x${K}`, (bytes / s64 / 1e9).toFixed(2), ratio(bytes + 64 * (K + N) * 4, s64), `${((2 * 64 * N * K) / s64 / 1e9).toFixed(2)} GFLOP/s`);
    if (numerics === 'fast') {
      // The fast set's two paths over the same prompt rows, in the same order (bitwise equal).
      const gemv = await time(() => matmul(rt, w, x, y, 64, { ...opts, path: 'gemv' }), 1, 3);
      const gemm = await time(() => matmul(rt, w, x, y, 64, { ...opts, path: 'gemm' }), 1, 3);
      line(`fast ${name} m=64 tiled GEMM`, `${N}x${K}`, (bytes / gemm / 1e9).toFixed(2), ratio(bytes + 64 * (K + N) * 4, gemm), `${(gemm / gemv).toFixed(2)}x the row-tiled GEMV's time`);
    }
  }
  for (const b of [w.buffer, x, y]) { rt.forget(b); rt.buffers.destroy(b); }
}

// ---- paged attention: decode (one token per sequence, long context) ----
if (section('attention')) {
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
  const bytes = seqs * context * layout.numKvHeads * layout.headDim * 2 * 2; // K and V, f16
  for (const numerics of ['fast', 'llama.cpp'] as const) {
    const s = await time(() => attention(rt, {
      layout, q, kCache, vCache, out, batch: bb, maxBlocksPerSeq: pagesPerSeq, tokens: seqs, seqs, heads, maxContext: context, maxQueryLen: 1,
      numerics, f16Accumulate: numerics === 'llama.cpp',
    }));
    line(`${numerics} attention decode f16 KV`, `${seqs} seqs x ${context} ctx`, (bytes / s / 1e9).toFixed(2), ratio(bytes, s), '');
  }
}

// ---- whole models: decode tokens/s, 1 and 8 sequences, both kernel sets ----
const SHARED = process.env.WGSERVE_SHARED ?? fileURLToPath(new URL('../../shared', import.meta.url));
const MODEL_FILES = [
  fileURLToPath(new URL('../models/wg-tolstoy-q8_0.gguf', import.meta.url)),
  `${SHARED}/models/wg-llama-spm-q4_k_m.gguf`,
];
for (const file of section('models') ? MODEL_FILES : []) {
  const model = await Model.load(rt, file);
  const label = file.split('/').pop()!.replace('.gguf', '');
  for (const numerics of ['fast', 'llama.cpp'] as Numerics[]) {
    const forward = new ForwardPass(model, { numerics });
    const kvCache = KvCache.create(rt, model.config);
    const promptIds = model.tokenizer.encode('Prince Andrew looked at', { addBos: true });
    const run = async (n: number) => {
      const t0 = performance.now();
      const results = await generate(forward, kvCache, Array.from({ length: n }, () => ({ promptIds, maxTokens: 48 })), { contextLength: model.config.contextLength });
      return results.reduce((a, r) => a + r.tokens.length, 0) / ((performance.now() - t0) / 1000);
    };
    await run(1);
    const one = await run(1);
    const eight = await run(8);
    line(`${numerics} ${label} decode, 1 sequence`, '48 tokens', '', '', `${one.toFixed(1)} tokens/s`);
    line(`${numerics} ${label} decode, 8 sequences`, '8 x 48 tokens', '', '', `${eight.toFixed(1)} tokens/s (${(eight / one).toFixed(2)}x)`);
    forward.destroy();
    kvCache.destroy();
  }
  model.destroy();
}

const a = rt.gpu.adapter;
console.log(`device: ${[a.vendor, a.architecture, a.description].filter(Boolean).join(' ')}${a.isSoftware ? ' (software)' : ''}\n`);
console.log('| kernel | shape | GB/s | ratio to copy | notes |\n|---|---|---|---|---|');
for (const r of rows) console.log(`| ${r.join(' | ')} |`);
rt.destroy();
