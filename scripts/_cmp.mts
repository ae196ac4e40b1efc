// Scratch: compare GPU intermediates with a llama.cpp dump (tmp tool).
import { readFileSync } from 'node:fs';
import { GpuRuntime } from '../src/gpu/index.ts';
import { KvCache } from '../src/kv/index.ts';
import { ForwardPass, Model, type Batch } from '../src/model/index.ts';

interface T { name: string; op: string; ne: number[]; data: Float32Array; batch: number }
function readDump(path: string): T[] {
  const b = readFileSync(path);
  const out: T[] = [];
  let o = 0, batch = -1;
  while (o < b.length) {
    const len = b.readUInt32LE(o); o += 4;
    if (len === 0xffffffff) { batch++; continue; }
    const name = b.toString('utf8', o, o + len); o += len;
    const oplen = b.readUInt32LE(o); o += 4;
    const op = b.toString('utf8', o, o + oplen); o += oplen;
    const ne = [0, 1, 2, 3].map((i) => Number(b.readBigInt64LE(o + 8 * i))); o += 32;
    const n = ne.reduce((a, x) => a * x, 1);
    const data = new Float32Array(b.buffer.slice(b.byteOffset + o, b.byteOffset + o + 4 * n)); o += 4 * n;
    out.push({ name, op, ne, data, batch });
  }
  return out;
}

const [modelFile, dumpFile, ...rest] = process.argv.slice(2);
const tokens = rest.map(Number);
const dump = readDump(dumpFile);
if (process.env.LIST) for (const t of dump) console.log(t.batch, t.name, t.op, t.ne.join('x'));
const rt = await GpuRuntime.create();
const model = await Model.load(rt, modelFile);
const kept: { name: string; buf: GPUBuffer; rows: number; cols: number }[] = [];
const forward = new ForwardPass(model, {
  numerics: (process.env.NUMERICS as 'exact') ?? 'llama.cpp',
  inspect(name, buffer, rows, cols) {
    const buf = rt.buffers.create('tap', rows * cols * 4);
    rt.copy(buffer, 0, buf, 0, rows * cols * 4);
    kept.push({ name, buf, rows, cols });
  },
});
const kv = KvCache.create(rt, model.config, { maxPages: 64, memoryBytes: 1 << 28, format: 'f16' });
const pages = kv.pool.allocate(Math.ceil(tokens.length / kv.pageSize))!;
const batch: Batch = {
  tokenIds: Int32Array.from(tokens),
  positions: Int32Array.from(tokens, (_, i) => i),
  seqStarts: Int32Array.from([0, tokens.length]),
  contextLens: Int32Array.from([tokens.length]),
  blockTables: Int32Array.from(pages),
  maxBlocksPerSeq: pages.length,
  slotMapping: Int32Array.from(tokens, (_, i) => pages[Math.floor(i / kv.pageSize)] * kv.pageSize + (i % kv.pageSize)),
  sampleRows: Int32Array.from(tokens, (_, i) => i),
};
await forward.logits(batch, kv);
const want: Record<string, string> = { Qrope: 'Qcur:ROPE', Krope: 'Kcur:ROPE', Qcur: 'Qcur:MUL_MAT', Kcur: 'Kcur:MUL_MAT', Vcur: 'Vcur:MUL_MAT', kqv_out: 'kqv_out:', ffn_swiglu: 'ffn_swiglu:' };
for (const k of kept) {
  const ours = await rt.buffers.readF32(k.buf, 0, k.rows * k.cols);
  const [base, layer] = k.name.split('-');
  const [lname, lop] = (want[base] ?? `${base}:`).split(':');
  const full = layer === undefined ? lname : `${lname}-${layer}`;
  const cands = dump.filter((t) => t.name === full && (!lop || t.op === lop) && t.batch === 0);
  const ref = cands[cands.length - 1];
  if (!ref) { console.log(k.name, 'no llama.cpp tensor'); continue; }
  if (ref.data.length !== ours.length) { console.log(k.name, 'size', ref.data.length, ours.length, ref.ne); continue; }
  let maxAbs = 0, maxRel = 0, diff = 0, refMax = 0;
  for (let i = 0; i < ours.length; i++) {
    const d = Math.abs(ours[i] - ref.data[i]);
    refMax = Math.max(refMax, Math.abs(ref.data[i]));
    if (d > 0) diff++;
    maxAbs = Math.max(maxAbs, d);
  }
  maxRel = maxAbs / refMax;
  console.log(`${k.name.padEnd(16)} ${ref.op.padEnd(10)} differ ${String(diff).padStart(6)}/${ours.length} maxAbs ${maxAbs.toExponential(2)} rel ${maxRel.toExponential(2)}`);
}
forward.destroy(); kv.destroy(); model.destroy(); rt.destroy();
