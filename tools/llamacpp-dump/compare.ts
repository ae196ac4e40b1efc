// Runs batches through ForwardPass and compares every intermediate tensor with a llama.cpp dump
// of the same batches (dump.cpp; see README.md). Usage:
//   tsx tools/llamacpp-dump/compare.ts MODEL DUMP TOKEN... [-- TOKEN...]...
import { readFileSync } from 'node:fs';
import { GpuRuntime } from '../../src/gpu/index.js';
import { KvCache } from '../../src/kv/index.js';
import { ForwardPass, Model, type Batch, type Numerics } from '../../src/model/index.js';

interface DumpedTensor {
  batch: number;
  name: string;
  op: string;
  data: Float32Array;
}

interface Tapped {
  name: string;
  buffer: GPUBuffer;
  size: number;
}

/** Our tap name -> llama.cpp's tensor name and op where the plain name is ambiguous. */
const LLAMA_NAMES: Record<string, [string, string?]> = {
  Qcur: ['Qcur', 'MUL_MAT'],
  Kcur: ['Kcur', 'MUL_MAT'],
  Vcur: ['Vcur', 'MUL_MAT'],
  Qrope: ['Qcur', 'ROPE'],
  Krope: ['Kcur', 'ROPE'],
};

function readDump(path: string): DumpedTensor[] {
  const b = readFileSync(path);
  const out: DumpedTensor[] = [];
  let o = 0;
  let batch = -1;
  const text = () => {
    const len = b.readUInt32LE(o);
    o += 4 + len;
    return b.toString('utf8', o - len, o);
  };
  while (o < b.length) {
    if (b.readUInt32LE(o) === 0xffffffff) {
      o += 4;
      batch++;
      continue;
    }
    const name = text();
    const op = text();
    const count = [0, 1, 2, 3].reduce((n, i) => n * Number(b.readBigInt64LE(o + 8 * i)), 1);
    o += 32;
    out.push({ batch, name, op, data: new Float32Array(b.buffer.slice(b.byteOffset + o, b.byteOffset + o + 4 * count)) });
    o += 4 * count;
  }
  return out;
}

/** The last tensor llama.cpp computed under our tap's name in a batch. */
function llamaTensor(dump: DumpedTensor[], batch: number, tap: string): DumpedTensor | undefined {
  const [base, layer] = tap.split('-');
  const [name, op] = LLAMA_NAMES[base] ?? [base];
  const full = layer === undefined ? name : `${name}-${layer}`;
  return dump.filter((t) => t.batch === batch && t.name === full && (!op || t.op === op)).at(-1);
}

function splitBatches(args: string[]): number[][] {
  const batches: number[][] = [[]];
  for (const a of args) {
    if (a === '--') batches.push([]);
    else batches[batches.length - 1].push(Number(a));
  }
  return batches;
}

/** One sequence's next tokens from position `start`, logits at every row. */
function batchOf(tokens: number[], start: number, pages: number[], pageSize: number): Batch {
  const positions = tokens.map((_, i) => start + i);
  return {
    tokenIds: Int32Array.from(tokens),
    positions: Int32Array.from(positions),
    seqStarts: Int32Array.from([0, tokens.length]),
    contextLens: Int32Array.from([start + tokens.length]),
    blockTables: Int32Array.from(pages),
    maxBlocksPerSeq: pages.length,
    slotMapping: Int32Array.from(positions, (p) => pages[Math.floor(p / pageSize)] * pageSize + (p % pageSize)),
    sampleRows: Int32Array.from(tokens, (_, i) => i),
  };
}

function describeDifference(ours: Float32Array, theirs: Float32Array): string | null {
  if (ours.length !== theirs.length) return `size ${ours.length}, llama.cpp ${theirs.length}`;
  let differ = 0;
  let maxAbs = 0;
  let scale = 0;
  for (let i = 0; i < ours.length; i++) {
    const d = Math.abs(ours[i] - theirs[i]);
    if (d > 0) differ++;
    maxAbs = Math.max(maxAbs, d);
    scale = Math.max(scale, Math.abs(theirs[i]));
  }
  if (differ === 0) return null;
  return `${differ}/${ours.length} differ, max |d| ${maxAbs.toExponential(2)} (${(maxAbs / scale).toExponential(2)} of the largest)`;
}

async function main(): Promise<void> {
  const [modelFile, dumpFile, ...rest] = process.argv.slice(2);
  const batches = splitBatches(rest);
  const dump = readDump(dumpFile);
  const rt = await GpuRuntime.create();
  const model = await Model.load(rt, modelFile);
  let tapped: Tapped[] = [];
  const forward = new ForwardPass(model, {
    numerics: (process.env.NUMERICS as Numerics | undefined) ?? 'llama.cpp',
    inspect(name, buffer, rows, cols) {
      const copy = rt.buffers.create('tap', rows * cols * 4);
      rt.copy(buffer, 0, copy, 0, rows * cols * 4);
      tapped.push({ name, buffer: copy, size: rows * cols });
    },
  });
  const total = batches.flat().length;
  const kv = KvCache.create(rt, model.config, { maxPages: Math.ceil(total / 16) + 1, memoryBytes: 1 << 28, format: 'f16' });
  const pages = kv.pool.allocate(Math.ceil(total / kv.pageSize))!;
  let start = 0;
  for (const [b, tokens] of batches.entries()) {
    tapped = [];
    await forward.logits(batchOf(tokens, start, pages, kv.pageSize), kv);
    start += tokens.length;
    let differing = 0;
    for (const t of tapped) {
      const ours = await rt.buffers.readF32(t.buffer, 0, t.size);
      rt.buffers.destroy(t.buffer);
      const theirs = llamaTensor(dump, b, t.name);
      if (!theirs) continue;
      const difference = describeDifference(ours, theirs.data);
      if (difference) differing++;
      if (difference || process.env.ALL) console.log(`batch ${b} ${t.name.padEnd(16)} ${difference ?? 'identical'}`);
    }
    console.log(`batch ${b}: ${tokens.length} tokens, ${differing} tensors differ`);
  }
  forward.destroy();
  kv.destroy();
  model.destroy();
  rt.destroy();
}

await main();
