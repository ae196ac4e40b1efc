import { describe, expect, it } from 'vitest';
import type { GpuRuntime } from '../../src/gpu/index.js';
import { f16BitsToF32, f32ToF16Bits } from '../../src/model/kernels/common.js';
import { add, gatherRows, scale, swiglu, swigluFused } from '../../src/model/kernels/elementwise.js';
import { addReference, gatherRowsReference, scaleReference, swigluFusedReference, swigluReference } from '../../src/model/kernels/elementwise.reference.js';
import { copyKvPages, kvBufferBytes, packPageCopies, writeKv, type KvLayout } from '../../src/model/kernels/kv.js';
import { copyKvPageReference, decodeKvCache, encodeKvCache, kvCacheReference, writeKvReference } from '../../src/model/kernels/kv.reference.js';
import { rmsNorm, rmsNormAdd } from '../../src/model/kernels/norm.js';
import { rmsNormAddReference, rmsNormReference } from '../../src/model/kernels/norm.reference.js';
import { rope, type RopeMode } from '../../src/model/kernels/rope.js';
import { ropeReference, ropeTableReference } from '../../src/model/kernels/rope.reference.js';
import type { ModelConfig } from '../../src/model/config.js';
import { ropeCosSin } from '../../src/model/rope-table.js';
import { argmax } from '../../src/model/kernels/sample.js';
import { argmaxReference } from '../../src/model/kernels/sample.reference.js';
import { getRuntime, maxAbsDiff, randomF32, rng, KERNEL_SHAPES, useShapes } from '../helpers/gpu.js';

/** max |a - b| relative to the largest reference magnitude (at least 1). */
function relDiff(gpu: ArrayLike<number>, ref: ArrayLike<number>): number {
  let scale = 1;
  for (let i = 0; i < ref.length; i++) scale = Math.max(scale, Math.abs(ref[i]));
  return maxAbsDiff(gpu, ref) / scale;
}

async function readF32(rt: GpuRuntime, buf: GPUBuffer, n: number): Promise<Float32Array> {
  await rt.sync();
  return rt.buffers.readF32(buf, 0, n);
}

describe('rmsNorm', () => {
  for (const shape of KERNEL_SHAPES) {
    it(`llama.cpp set: equals llama.cpp's arithmetic for 3x8, 5x1000 and 2x4096 rows (${shape.name})`, async () => {
      const rt = await getRuntime();
      useShapes(rt, shape.software);
      for (const [rows, dim] of [[3, 8], [5, 1000], [2, 4096]]) {
        const x = randomF32(rows * dim, 1 + dim, 3);
        const w = randomF32(dim, 2 + dim);
        const out = rt.buffers.create('out', x.byteLength);
        rmsNorm(rt, rt.buffers.createWith('x', x), rt.buffers.createWith('w', w), out, rows, dim, 1e-5, 'llama.cpp');
        expect(maxAbsDiff(await readF32(rt, out, rows * dim), rmsNormReference(x, w, rows, dim, 1e-5)), `${rows}x${dim}`).toBe(0);
      }
    });

    it(`fast set: plain f32 within 1e-6 of the reference, and a row's bits the same alone as in a batch (${shape.name})`, async () => {
      const rt = await getRuntime();
      useShapes(rt, shape.software);
      for (const [rows, dim] of [[3, 8], [5, 1000], [2, 4096]]) {
        const x = randomF32(rows * dim, 1 + dim, 3);
        const w = randomF32(dim, 2 + dim);
        const wBuf = rt.buffers.createWith('w', w);
        const out = rt.buffers.create('out', x.byteLength);
        rmsNorm(rt, rt.buffers.createWith('x', x), wBuf, out, rows, dim, 1e-5);
        const batched = await readF32(rt, out, rows * dim);
        expect(relDiff(batched, rmsNormReference(x, w, rows, dim, 1e-5)), `${rows}x${dim}`).toBeLessThan(1e-6);
        const last = rt.buffers.create('out.last', dim * 4);
        rmsNorm(rt, rt.buffers.createWith('x.last', x.subarray((rows - 1) * dim)), wBuf, last, 1, dim, 1e-5);
        expect(Array.from(await readF32(rt, last, dim))).toEqual(Array.from(batched.subarray((rows - 1) * dim)));
      }
    });
  }

  it.each(KERNEL_SHAPES)('fuses the residual add ($name)', async (shape) => {
    const rt = await getRuntime();
    useShapes(rt, shape.software);
    const [rows, dim] = [4, 300];
    const h = randomF32(rows * dim, 3);
    const delta = randomF32(rows * dim, 4);
    const w = randomF32(dim, 5);
    const hBuf = rt.buffers.createWith('h', h);
    const out = rt.buffers.create('out', h.byteLength);
    rmsNormAdd(rt, hBuf, rt.buffers.createWith('delta', delta), rt.buffers.createWith('w', w), out, rows, dim, 1e-6, 'llama.cpp');
    const ref = rmsNormAddReference(h, delta, w, rows, dim, 1e-6);
    expect(maxAbsDiff(await readF32(rt, out, rows * dim), ref.out)).toBe(0);
    expect(maxAbsDiff(await readF32(rt, hBuf, rows * dim), ref.residual)).toBe(0);
    const fastH = rt.buffers.createWith('h.fast', h);
    rmsNormAdd(rt, fastH, rt.buffers.createWith('delta', delta), rt.buffers.createWith('w', w), out, rows, dim, 1e-6);
    expect(relDiff(await readF32(rt, out, rows * dim), ref.out)).toBeLessThan(1e-6);
    expect(maxAbsDiff(await readF32(rt, fastH, rows * dim), ref.residual)).toBe(0);
  });

  it('refuses to normalize in place', async () => {
    const rt = await getRuntime();
    const x = rt.buffers.create('x', 64);
    expect(() => rmsNorm(rt, x, x, x, 1, 16, 1e-5)).toThrow(/different buffer/);
  });
});

describe('rope', () => {
  const cases: Array<{ mode: RopeMode; heads: number; headDim: number; ropeDim: number; factors: boolean; maxPos: number }> = [
    { mode: 'norm', heads: 2, headDim: 4, ropeDim: 4, factors: false, maxPos: 64 },
    { mode: 'norm', heads: 3, headDim: 16, ropeDim: 12, factors: false, maxPos: 100 },
    { mode: 'neox', heads: 3, headDim: 16, ropeDim: 16, factors: false, maxPos: 100 },
    { mode: 'neox', heads: 2, headDim: 32, ropeDim: 24, factors: true, maxPos: 100 },
    { mode: 'norm', heads: 4, headDim: 32, ropeDim: 32, factors: true, maxPos: 100 },
    { mode: 'norm', heads: 2, headDim: 64, ropeDim: 64, factors: false, maxPos: 30000 },
  ];
  for (const c of cases) {
    it(`${c.mode} mode, headDim ${c.headDim}, ropeDim ${c.ropeDim}${c.factors ? ', freq factors' : ''}, positions < ${c.maxPos}`, async () => {
      const rt = await getRuntime();
      const tokens = 7;
      const r = rng(c.headDim + c.ropeDim);
      const positions = Int32Array.from({ length: tokens }, (_, i) => (i === 0 ? c.maxPos - 1 : Math.floor(r() * c.maxPos)));
      const x = randomF32(tokens * c.heads * c.headDim, 11 + c.headDim);
      const factors = c.factors ? Float32Array.from({ length: c.ropeDim / 2 }, () => 1 + r() * 7) : undefined;
      const config = { ropeDim: c.ropeDim, ropeFreqBase: 10000 } as ModelConfig;
      const cosSin = ropeCosSin(config, factors, 0, c.maxPos);
      const run = async (numerics: 'fast' | 'llama.cpp') => {
        const xBuf = rt.buffers.createWith('x', x);
        rope(rt, {
          x: xBuf, positions: rt.buffers.createWith('pos', positions), cosSin: rt.buffers.createWith('cosSin', cosSin),
          tokens, heads: c.heads, headDim: c.headDim, ropeDim: c.ropeDim, mode: c.mode,
        }, numerics);
        return readF32(rt, xBuf, x.length);
      };
      const out = await run('llama.cpp');
      const exact = x.slice();
      ropeTableReference({ x: exact, positions, heads: c.heads, headDim: c.headDim, ropeDim: c.ropeDim, mode: c.mode, cosSin });
      expect(maxAbsDiff(out, exact)).toBe(0);
      const ref = x.slice();
      ropeReference({ x: ref, positions, heads: c.heads, headDim: c.headDim, ropeDim: c.ropeDim, freqBase: 10000, mode: c.mode, freqFactors: factors });
      // The table's angles carry llama.cpp's f32 error: theta is multiplied by base^(-2 / ropeDim)
      // once per pair in f32, about (pair + 1) * 2^-24 relative, at most ~pos * 2^-24 radians.
      const tol = 1e-6 + 2 * c.maxPos * 2 ** -24;
      expect(maxAbsDiff(out, ref)).toBeLessThan(tol);
      // The fast set's plain f32 rotation: within an ulp or two of the fused one.
      expect(maxAbsDiff(await run('fast'), exact)).toBeLessThan(1e-6);
    });
  }
});

describe('writeKv', () => {
  for (const format of ['f32', 'f16'] as const) {
    it(`writes rows through the slot mapping (${format}), skipping -1`, async () => {
      const rt = await getRuntime();
      const layout: KvLayout = { numPages: 5, pageSize: 4, numKvHeads: 2, headDim: 6, format };
      const tokens = 9;
      const row = layout.numKvHeads * layout.headDim;
      const k = randomF32(tokens * row, 21, 4);
      const v = randomF32(tokens * row, 22, 4);
      const slots = Int32Array.from([17, 2, -1, 3, 8, 19, 0, -1, 12]);
      const kCache = rt.buffers.create('k', kvBufferBytes(layout));
      const vCache = rt.buffers.create('v', kvBufferBytes(layout));
      writeKv(rt, layout, rt.buffers.createWith('kIn', k), rt.buffers.createWith('vIn', v), rt.buffers.createWith('slots', slots), kCache, vCache, tokens);
      await rt.sync();
      const kRef = kvCacheReference(layout);
      const vRef = kvCacheReference(layout);
      writeKvReference(layout, k, v, slots, kRef, vRef);
      expect(maxAbsDiff(decodeKvCache(layout, await rt.buffers.read(kCache)), kRef)).toBe(0);
      expect(maxAbsDiff(decodeKvCache(layout, await rt.buffers.read(vCache)), vRef)).toBe(0);
    });
  }

  for (const format of ['f32', 'f16', 'q8_0', 'q4_0'] as const) {
    it(`copies whole pages in K and V, leaving the others (${format})`, async () => {
      const rt = await getRuntime();
      const headDim = format === 'q8_0' || format === 'q4_0' ? 32 : 6;
      const layout: KvLayout = { numPages: 6, pageSize: 4, numKvHeads: 2, headDim, format };
      const tokens = layout.numPages * layout.pageSize;
      const row = layout.numKvHeads * layout.headDim;
      const k = randomF32(tokens * row, 31, 4);
      const v = randomF32(tokens * row, 32, 4);
      const slots = Int32Array.from({ length: tokens }, (_, i) => i);
      const kCache = rt.buffers.create('k', kvBufferBytes(layout));
      const vCache = rt.buffers.create('v', kvBufferBytes(layout));
      writeKv(rt, layout, rt.buffers.createWith('kIn', k), rt.buffers.createWith('vIn', v), rt.buffers.createWith('slots', slots), kCache, vCache, tokens);
      const copies = [{ src: 1, dst: 4 }, { src: 5, dst: 0 }, { src: 4, dst: 2 }];
      // In order: the third copy reads page 4, which the first one wrote.
      copyKvPages(rt, layout, rt.buffers.createWith('jobs', packPageCopies(layout, copies)), copies.length, kCache, vCache);
      await rt.sync();
      const kRef = kvCacheReference(layout);
      const vRef = kvCacheReference(layout);
      writeKvReference(layout, k, v, slots, kRef, vRef);
      for (const c of copies) {
        copyKvPageReference(layout, c, kRef);
        copyKvPageReference(layout, c, vRef);
      }
      expect(maxAbsDiff(decodeKvCache(layout, await rt.buffers.read(kCache)), kRef)).toBe(0);
      expect(maxAbsDiff(decodeKvCache(layout, await rt.buffers.read(vCache)), vRef)).toBe(0);
      expect(() => packPageCopies(layout, [{ src: 6, dst: 0 }])).toThrow(/outside/);
      expect(() => packPageCopies(layout, [{ src: 3, dst: 3 }])).toThrow(/both/);
    });
  }

  for (const format of ['q8_0', 'q4_0'] as const) {
    it(`quantizes rows block by block into their slots (${format}), over two dispatches sharing scale words`, async () => {
      const rt = await getRuntime();
      // One 32-value block per (token, head) and 5 slots per page: scales of neighbouring
      // tokens share words, written by different threads and different dispatches.
      const layout: KvLayout = { numPages: 4, pageSize: 5, numKvHeads: 1, headDim: 32, format };
      const row = layout.numKvHeads * layout.headDim;
      const kRef = kvCacheReference(layout);
      const vRef = kvCacheReference(layout);
      // Empty slots hold what the encoder makes of zeros (q4_0: nibbles 8), so the bytes compare whole.
      const kCache = rt.buffers.createWith('k', encodeKvCache(layout, kRef));
      const vCache = rt.buffers.createWith('v', encodeKvCache(layout, vRef));
      // Values with exact ties for the rounding (x * id = n + 0.5) and a zero row.
      const ties = Float32Array.from({ length: row }, (_, i) => (i === 0 ? 127 : (i % 7) + 0.5));
      for (const [seed, slots] of [[31, [0, 2, 4, 7, -1, 18]], [32, [1, 3, 6, 19, 5]]] as const) {
        const tokens = slots.length;
        const k = randomF32(tokens * row, seed, 4);
        k.set(ties, 0);
        const v = randomF32(tokens * row, seed + 100, 0.01);
        v.fill(0, row, 2 * row);
        const slotBuf = Int32Array.from(slots);
        writeKv(rt, layout, rt.buffers.createWith('kIn', k), rt.buffers.createWith('vIn', v), rt.buffers.createWith('slots', slotBuf), kCache, vCache, tokens);
        await rt.sync();
        writeKvReference(layout, k, v, slotBuf, kRef, vRef);
      }
      const kBytes = await rt.buffers.read(kCache);
      expect(maxAbsDiff(decodeKvCache(layout, kBytes), kRef)).toBe(0);
      expect(maxAbsDiff(decodeKvCache(layout, await rt.buffers.read(vCache)), vRef)).toBe(0);
      // Bit for bit, bytes included (a block of zeros is d = 0 and any quants: these are the encoder's).
      expect(new Uint8Array(kBytes)).toEqual(encodeKvCache(layout, kRef));
    });
  }

  it('refuses a quantized format for a head dimension that is not a multiple of 32', async () => {
    const rt = await getRuntime();
    const layout: KvLayout = { numPages: 1, pageSize: 4, numKvHeads: 2, headDim: 4, format: 'q8_0' };
    const b = rt.buffers.create('x', 64);
    expect(() => writeKv(rt, layout, b, b, b, b, b, 1)).toThrow(/q8_0 needs a head dimension that is a multiple of 32.*is 4/);
  });

  it('converts f16 like IEEE round-to-nearest-even', () => {
    const cases: Array<[number, number]> = [
      [1, 0x3c00], [-2, 0xc000], [65504, 0x7bff], [65520, 0x7c00], [1e-8, 0], [2 ** -24, 1],
      [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02], [2 ** -14 * (1 - 2 ** -11), 0x0400], [0.1, 0x2e66],
    ];
    for (const [x, bits] of cases) expect(f32ToF16Bits(x)).toBe(bits);
    expect(f16BitsToF32(0x2e66)).toBeCloseTo(0.0999755859375, 12);
  });
});

describe('elementwise', () => {
  const n = 1000;
  // Gates in [-6, 6], and a few far out to take ggml_v_expf's scaled (|n| > 126) and overflow branches.
  const a = randomF32(n, 31, 6);
  a.set([-95, -89.5, -120, 90, 130, 0, -0.0001, 1e-30]);
  const b = randomF32(n, 32, 2);

  it('swiglu over separate gate and up buffers, in llama.cpp\'s arithmetic', async () => {
    const rt = await getRuntime();
    const out = rt.buffers.create('out', a.byteLength);
    swiglu(rt, rt.buffers.createWith('gate', a), rt.buffers.createWith('up', b), out, n, 'llama.cpp');
    const gpu = await readF32(rt, out, n);
    expect(maxAbsDiff(gpu, swigluReference(a, b))).toBe(0);
    // ggml_v_expf is within 2 ulp of e^x: SiLU stays within 1e-6 of exact math.
    const exactMath = a.map((g, i) => (g / (1 + Math.exp(-g))) * b[i]);
    expect(relDiff(gpu, exactMath)).toBeLessThan(1e-6);
    // The fast set's plain f32 x / (1 + exp(-x)): WGSL's exp is within a few ulp.
    const fastOut = rt.buffers.create('out.fast', a.byteLength);
    swiglu(rt, rt.buffers.createWith('gate', a), rt.buffers.createWith('up', b), fastOut, n);
    expect(relDiff(await readF32(rt, fastOut, n), exactMath)).toBeLessThan(1e-5);
  });

  it('swiglu over one [gate | up] buffer', async () => {
    const rt = await getRuntime();
    const [rows, ffn] = [5, 100];
    const out = rt.buffers.create('out', rows * ffn * 4);
    swigluFused(rt, rt.buffers.createWith('gateUp', a), out, rows, ffn, 'llama.cpp');
    expect(maxAbsDiff(await readF32(rt, out, rows * ffn), swigluFusedReference(a, rows, ffn))).toBe(0);
    swigluFused(rt, rt.buffers.createWith('gateUp', a), out, rows, ffn);
    expect(relDiff(await readF32(rt, out, rows * ffn), swigluFusedReference(a, rows, ffn))).toBeLessThan(1e-5);
  });

  it('adds into a new buffer and in place', async () => {
    const rt = await getRuntime();
    const aBuf = rt.buffers.createWith('a', a);
    const bBuf = rt.buffers.createWith('b', b);
    const out = rt.buffers.create('out', a.byteLength);
    add(rt, aBuf, bBuf, out, n);
    expect(maxAbsDiff(await readF32(rt, out, n), addReference(a, b))).toBe(0);
    add(rt, aBuf, bBuf, aBuf, n);
    expect(maxAbsDiff(await readF32(rt, aBuf, n), addReference(a, b))).toBe(0);
  });

  it('scales into a new buffer and in place', async () => {
    const rt = await getRuntime();
    const aBuf = rt.buffers.createWith('a', a);
    const out = rt.buffers.create('out', a.byteLength);
    scale(rt, aBuf, out, n, 0.125);
    expect(maxAbsDiff(await readF32(rt, out, n), scaleReference(a, 0.125))).toBe(0);
    scale(rt, aBuf, aBuf, n, -3);
    expect(maxAbsDiff(await readF32(rt, aBuf, n), scaleReference(a, -3))).toBe(0);
  });

  it('gathers the sample rows', async () => {
    const rt = await getRuntime();
    const dim = 40;
    const rowIds = Int32Array.from([24, 0, 7, 24]);
    const out = rt.buffers.create('out', rowIds.length * dim * 4);
    gatherRows(rt, rt.buffers.createWith('x', a), rt.buffers.createWith('rows', rowIds), out, rowIds.length, dim);
    expect(maxAbsDiff(await readF32(rt, out, rowIds.length * dim), gatherRowsReference(a, rowIds, dim))).toBe(0);
  });
});

describe('argmax', () => {
  async function run(rt: GpuRuntime, logits: Float32Array, rows: number, vocab: number): Promise<Int32Array> {
    const out = rt.buffers.create('ids', rows * 4);
    argmax(rt, rt.buffers.createWith('logits', logits), out, rows, vocab);
    await rt.sync();
    return rt.buffers.readI32(out, 0, rows);
  }

  it.each(KERNEL_SHAPES)('picks the lowest index among ties over a 128256 vocabulary ($name)', async (shape) => {
    const rt = await getRuntime();
    useShapes(rt, shape.software);
    const vocab = 128256;
    const rows = 4;
    const logits = randomF32(rows * vocab, 41, 10);
    logits[0 * vocab + 100000] = 20; // tie: 5 loses to... the lower index below
    logits[0 * vocab + 5] = 20;
    logits[0 * vocab + 127000] = 20;
    logits[1 * vocab + vocab - 1] = 11; // last index
    logits[2 * vocab + 0] = 10.5; // first index, with a tie far away
    logits[2 * vocab + 90001] = 10.5;
    for (let i = 3 * vocab + 256; i < 3 * vocab + 300; i++) logits[i] = 15; // ties inside one thread's stride and across threads
    const ids = await run(rt, logits, rows, vocab);
    expect(Array.from(ids)).toEqual(Array.from(argmaxReference(logits, rows, vocab)));
    expect(Array.from(ids)).toEqual([5, vocab - 1, 0, 256]);
  });

  it.each(KERNEL_SHAPES)('handles small vocabularies, equal rows and -infinity ($name)', async (shape) => {
    const rt = await getRuntime();
    useShapes(rt, shape.software);
    const logits = Float32Array.from([3, 3, 3, 3, 3, -Infinity, -Infinity, -Infinity, -Infinity, -Infinity, -Infinity, -Infinity, -1, -Infinity, -1]);
    expect(Array.from(await run(rt, logits, 3, 5))).toEqual([0, 0, 2]);
  });
});
