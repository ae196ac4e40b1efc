import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { GpuRuntime } from '../../src/gpu/index.js';
import { GgmlType, ggmlTypeName, parseGgufHeader, type TensorInfo } from '../../src/model/gguf.js';
import { embed } from '../../src/model/kernels/embedding.js';
import {
  GEMV_MAX_ROWS,
  matmul,
  matmulShared,
  q8ActivationWords,
  quantizeActivationsQ8_0,
  roundActivations,
  uploadWeight,
  type GpuWeight,
  type MatmulOptions,
} from '../../src/model/kernels/matmul.js';
import { embedRef, fmaF32, matmulFloatLlamaRef, matmulQ8GemvRef, matmulQ8Ref, matmulQKGemvRef, matmulQKRef, matmulRef, type CpuWeight } from '../../src/model/kernels/matmul.reference.js';
import { UnsupportedTensorTypeError, activationGrid, type ActivationGrid } from '../../src/model/quant.js';
import {
  quantize,
  quantizeActivationsQ8_0 as quantizeActivationsQ8_0Ref,
  randomKQuant,
  roundActivations as roundActivationsRef,
} from '../../src/model/quantize.js';
import { getRuntime, maxAbsDiff, randomF32, rng, KERNEL_SHAPES, useShapes } from '../helpers/gpu.js';
import { SHARED } from '../helpers/shared.js';

const MODELS = join(SHARED, 'models');
const MS = [1, 2, 5, 16, 33, 70];

function randomWeight(type: GgmlType, rows: number, cols: number, seed: number): CpuWeight {
  const bytes =
    type === GgmlType.Q4_K || type === GgmlType.Q6_K
      ? randomKQuant(type, (rows * cols) / 256, rng(seed))
      : quantize(type, randomF32(rows * cols, seed));
  return { type, rows, cols, bytes };
}

function upload(rt: GpuRuntime, w: CpuWeight, name: string): GpuWeight {
  return uploadWeight(rt, name, w.type, [w.cols, w.rows], w.bytes);
}

/** Every row of `got` within 1e-4 of the largest magnitude in that row of `want`. */
function expectRowsClose(got: Float32Array, want: Float32Array, rows: number, what: string): void {
  expect(got.length).toBe(want.length);
  const cols = want.length / rows;
  for (let r = 0; r < rows; r++) {
    let mag = 0, err = 0;
    for (let c = r * cols; c < (r + 1) * cols; c++) {
      mag = Math.max(mag, Math.abs(want[c]));
      err = Math.max(err, Math.abs(got[c] - want[c]));
    }
    if (!(err <= 1e-4 * mag)) expect.fail(`${what}: row ${r} max error ${err} vs magnitude ${mag}`);
  }
}

async function runMatmul(
  rt: GpuRuntime,
  w: GpuWeight,
  x: Float32Array,
  m: number,
  init?: Float32Array,
  opts: MatmulOptions = {},
): Promise<Float32Array> {
  const xb = rt.buffers.createWith('x', x);
  const yb = init ? rt.buffers.createWith('y', init) : rt.buffers.create('y', m * w.rows * 4);
  matmul(rt, w, xb, yb, m, { ...opts, accumulate: !!init });
  await rt.sync();
  const y = await rt.buffers.readF32(yb, 0, m * w.rows);
  rt.buffers.destroy(xb);
  rt.buffers.destroy(yb);
  return y;
}

/** runMatmul in the llama.cpp kernel set. */
function runLlama(rt: GpuRuntime, w: GpuWeight, x: Float32Array, m: number, init?: Float32Array, opts: MatmulOptions = {}): Promise<Float32Array> {
  return runMatmul(rt, w, x, m, init, { numerics: 'llama.cpp', ...opts });
}

async function runEmbed(rt: GpuRuntime, w: GpuWeight, ids: Int32Array, maxGroupsPerDim?: number): Promise<Float32Array> {
  const idb = rt.buffers.createWith('ids', ids);
  const out = rt.buffers.create('embedded', ids.length * w.cols * 4);
  embed(rt, w, idb, out, ids.length, { maxGroupsPerDim });
  await rt.sync();
  const y = await rt.buffers.readF32(out, 0, ids.length * w.cols);
  rt.buffers.destroy(idb);
  rt.buffers.destroy(out);
  return y;
}

// (K, N) per type: K = 8 for float types (as llama-2-tiny-random), N never a tile multiple.
const SHAPES: [GgmlType, [number, number][]][] = [
  [GgmlType.F32, [[8, 37], [68, 130]]],
  [GgmlType.F16, [[8, 37], [260, 67]]],
  [GgmlType.BF16, [[8, 37], [36, 65]]],
  [GgmlType.Q8_0, [[32, 37], [96, 130]]],
  [GgmlType.Q4_0, [[32, 37], [160, 67]]],
  [GgmlType.Q4_K, [[256, 37], [512, 67]]],
  [GgmlType.Q6_K, [[256, 37], [512, 67]]],
];

describe('llama.cpp set: matmul kernels (GEMV for M <= 16, tiled GEMM above) match the CPU reference', () => {
  for (const [type, shapes] of SHAPES) {
    for (const [k, n] of shapes) {
      it(`${ggmlTypeName(type)} K=${k} N=${n}, M in ${MS.join(', ')}, plain and accumulating`, async () => {
        const rt = await getRuntime();
        const cpu = randomWeight(type, n, k, k * 1000 + n);
        const w = upload(rt, cpu, `w.${ggmlTypeName(type)}`);
        for (const m of MS) {
          const x = randomF32(m * k, m + 7);
          expectRowsClose(await runLlama(rt, w, x, m), matmulRef(cpu, x, m), m, `M=${m}`);
        }
        for (const m of [3, 40]) {
          const x = randomF32(m * k, m + 9);
          const init = randomF32(m * n, m + 11, 4);
          expectRowsClose(await runLlama(rt, w, x, m, init), matmulRef(cpu, x, m, init), m, `accumulate M=${m}`);
        }
        // The GEMV thread split a hardware GPU would use, and the GEMM path on a small batch.
        const x5 = randomF32(5 * k, 13);
        const want5 = matmulRef(cpu, x5, 5);
        const variants: MatmulOptions[] = [{ gemvSplit: 64 }, { gemvSplit: 2 }, { path: 'gemm' }];
        for (const opts of variants) {
          expectRowsClose(await runLlama(rt, w, x5, 5, undefined, opts), want5, 5, `M=5 ${JSON.stringify(opts)}`);
        }
        rt.buffers.destroy(w.buffer);
      });
    }
  }

  it.each(KERNEL_SHAPES)('covers every GEMV row bucket (M = 1..16) and the first GEMM size ($name)', async (shape) => {
    const rt = await getRuntime();
    useShapes(rt, shape.software);
    const cpu = randomWeight(GgmlType.Q8_0, 45, 64, 5);
    const w = upload(rt, cpu, 'w.buckets');
    for (let m = 1; m <= GEMV_MAX_ROWS + 1; m++) {
      const x = randomF32(m * 64, 100 + m);
      expectRowsClose(await runLlama(rt, w, x, m), matmulRef(cpu, x, m), m, `M=${m}`);
    }
  });

  it('handles a vocabulary-sized N, and a GEMV grid folded into 2D', async () => {
    const rt = await getRuntime();
    const n = 140_001;
    const cpu = randomWeight(GgmlType.F16, n, 8, 6);
    const w = upload(rt, cpu, 'w.wide');
    for (const m of [1, 3]) {
      const x = randomF32(m * 8, 200 + m);
      expectRowsClose(await runLlama(rt, w, x, m), matmulRef(cpu, x, m), m, `M=${m}`);
    }
    // A real GPU's split of 64 threads per 2 rows needs 70001 workgroups; SwiftShader runs that
    // slowly, so the same folding is checked with a smaller per-dimension limit.
    const x = randomF32(3 * 8, 203);
    const opts = { gemvSplit: 64, maxGroupsPerDim: 1000 } as const;
    const cpuSmall = randomWeight(GgmlType.F16, 3001, 8, 7);
    const small = upload(rt, cpuSmall, 'w.folded');
    expectRowsClose(await runLlama(rt, small, x, 3, undefined, opts), matmulRef(cpuSmall, x, 3), 3, 'folded grid');
  });

  it('matmul with a real Q6_K tensor (ffn_down of wg-llama-spm-q4_k_m)', async () => {
    const rt = await getRuntime();
    const model = loadModel('wg-llama-spm-q4_k_m.gguf');
    const cpu = model.weight('blk.0.ffn_down.weight');
    expect(cpu.type).toBe(GgmlType.Q6_K);
    const w = upload(rt, cpu, 'blk.0.ffn_down.weight');
    for (const m of [2, 24]) {
      const x = randomF32(m * cpu.cols, 300 + m);
      expectRowsClose(await runLlama(rt, w, x, m), matmulRef(cpu, x, m), m, `M=${m}`);
    }
  });
});

describe('activations rounded as llama.cpp rounds them (quantize_act.wgsl, quantize.ts roundActivations)', () => {
  const f = Math.fround;

  async function roundOnGpu(rt: GpuRuntime, grid: ActivationGrid, x: Float32Array): Promise<Float32Array> {
    const xb = rt.buffers.createWith('x', x);
    const out = rt.buffers.create('rounded', x.length * 4);
    roundActivations(rt, grid, xb, out, x.length);
    await rt.sync();
    const got = await rt.buffers.readF32(out, 0, x.length);
    rt.buffers.destroy(xb);
    rt.buffers.destroy(out);
    return got;
  }

  /** GPU and CPU reference both give `want` exactly. */
  async function expectRounded(grid: ActivationGrid, x: Float32Array, want: number[]): Promise<void> {
    const rt = await getRuntime();
    const cpu = roundActivationsRef(grid, x);
    const gpu = await roundOnGpu(rt, grid, x);
    want.forEach((v, i) => {
      if (cpu[i] !== v) expect.fail(`${grid} CPU element ${i}: ${cpu[i]}, want ${v}`);
      if (gpu[i] !== v) expect.fail(`${grid} GPU element ${i}: ${gpu[i]}, want ${v}`);
    });
  }

  function block(n: number, head: number[]): Float32Array {
    const x = new Float32Array(n);
    x.set(head);
    return x;
  }

  it('q8_0 (Q8_0 and Q4_0 weights): ties to even, id = 127 / amax, the f16-rounded scale', async () => {
    expect(activationGrid(GgmlType.Q4_0)).toBe('q8_0');
    // Block 1: amax 127, so d = 1 and id = 1: x' = x rounded half to even (roundf would give 3, 4, -3, -4).
    // Block 2: amax 1: d = 1/127 = 0.007874016 is stored as f16 0.00787353515625 (1032/1024 * 2^-7),
    // id = 127: q = 127, 31.75 -> 32, -63.5 -> -64, 95.25 -> 95, and x' = q * 0.00787353515625.
    const x = new Float32Array(64);
    x.set([127, 2.5, 3.5, -2.5, -3.5, 0.49, -126.6, 0.001]);
    x.set([1, 0.25, -0.5, 0.75], 32);
    const want = new Array(64).fill(0);
    want.splice(0, 8, 127, 2, 4, -2, -4, 0, -127, 0);
    want.splice(32, 4, 0.99993896484375, 0.251953125, -0.50390625, 0.74798583984375);
    await expectRounded('q8_0', x, want);
  });

  it('q8_k (Q4_K and Q6_K weights): iscale = -127 / max, d = 1 / iscale as f32, ties to even', async () => {
    expect(activationGrid(GgmlType.Q6_K)).toBe('q8_k');
    // max = -2 (first of largest |x|): iscale = 63.5, d = f32(1 / 63.5). q: 1 -> 63.5 -> 64,
    // -1 -> -64, 0.5 -> 31.75 -> 32, -2 -> -127, 2 -> 127, 0.01 -> 0.635 -> 1, 0.003 -> 0.
    const x = block(256, [1, -1, 0.5, -2, 0.01, 0.003, 0, 2]);
    const d = f(1 / 63.5);
    await expectRounded('q8_k', x, [64, -64, 32, -127, 1, 0, 0, 127].map((q) => f(d * q)));
  });

  it('f16 and bf16 (F16 and BF16 weights): element-wise round to nearest even, subnormals and overflow', async () => {
    expect(activationGrid(GgmlType.F16)).toBe('f16');
    expect(activationGrid(GgmlType.F32)).toBe(null);
    const u = 2 ** -24; // smallest f16 subnormal
    await expectRounded(
      'f16',
      Float32Array.from([1 + 2 ** -11, 1 + 3 * 2 ** -11, 65519, 65520, 0.5 * u, 1.5 * u, -1.5 * u, 0.75 * u, 0.1, -3, 0, 0]),
      [1, 1 + 2 ** -9, 65504, Infinity, 0, 2 * u, -2 * u, u, 0.0999755859375, -3, 0, 0],
    );
    await expectRounded('bf16', Float32Array.from([1 + 2 ** -8, 1 + 3 * 2 ** -8, 0.1, -3]), [1, 1 + 2 ** -6, 0.10009765625, -3]);
  });

  it('GPU rounding equals the CPU reference bit for bit on random blocks of every scale', async () => {
    const rt = await getRuntime();
    const r = rng(77);
    const n = 3 * 1024;
    const x = randomF32(n, 78);
    // Scale each 32-block by 2^-20 .. 2^10; block 5 all zeros; block 6 half-integers with amax 127 (ties).
    for (let b = 0; b < n / 32; b++) {
      const s = 2 ** (Math.floor(r() * 31) - 20);
      for (let j = 0; j < 32; j++) x[b * 32 + j] *= s;
    }
    x.fill(0, 5 * 32, 6 * 32);
    for (let j = 0; j < 32; j++) x[6 * 32 + j] = j === 0 ? 127 : Math.floor(r() * 200) - 100 + 0.5;
    for (const grid of ['q8_0', 'q8_k', 'f16', 'bf16'] as const) {
      const want = roundActivationsRef(grid, x);
      const got = await roundOnGpu(rt, grid, x);
      for (let i = 0; i < n; i++) {
        if (got[i] !== want[i]) expect.fail(`${grid} element ${i} (x = ${x[i]}): GPU ${got[i]}, CPU ${want[i]}`);
      }
      expect(maxAbsDiff(want, x), grid).toBeGreaterThan(0);
    }
  });

  it('the llama.cpp set rounds x onto the weight grid; the fast set multiplies f32 x (float weights)', async () => {
    const rt = await getRuntime();
    for (const [type, [k, n]] of SHAPES.map(([t, sh]) => [t, sh[sh.length - 1]] as const)) {
      const cpu = randomWeight(type, n, k, 900 + k);
      const w = upload(rt, cpu, `w.exact.${ggmlTypeName(type)}`);
      for (const m of [3, 40]) {
        const x = randomF32(m * k, 901 + m);
        const rounded = await runLlama(rt, w, x, m);
        // Both sets: int8 activations (Q8_0 blocks for Q8_0 / Q4_0, Q8_K blocks for K-quants).
        if (type === GgmlType.Q8_0 || type === GgmlType.Q4_0 || type === GgmlType.Q4_K || type === GgmlType.Q6_K) continue;
        const fast = await runMatmul(rt, w, x, m);
        expectRowsClose(fast, matmulRef(cpu, x, m, undefined, { activations: 'exact' }), m, `${ggmlTypeName(type)} fast M=${m}`);
        if (activationGrid(type)) expect(maxAbsDiff(rounded, fast), ggmlTypeName(type)).toBeGreaterThan(0);
      }
      rt.buffers.destroy(w.buffer);
    }
  });

  it('matmulShared (q/k/v on one x) equals separate matmuls, across grids, and the scratch grows inside a submission', async () => {
    const rt = await getRuntime();
    const k = 512;
    const cpus = [
      randomWeight(GgmlType.Q4_K, 40, k, 1),
      randomWeight(GgmlType.Q6_K, 24, k, 2),
      randomWeight(GgmlType.Q8_0, 24, k, 3),
      randomWeight(GgmlType.F32, 8, k, 4),
    ];
    const ws = cpus.map((c, i) => upload(rt, c, `w.shared.${i}`));
    // A small call first, then a larger one in the same submission: the second grows the scratch.
    for (const m of [2, 70]) {
      const x = randomF32(m * k, 500 + m);
      const xb = rt.buffers.createWith('x', x);
      const ys = cpus.map((c) => rt.buffers.create('y', m * c.rows * 4));
      const init = randomF32(m * cpus[3].rows, 7);
      rt.buffers.write(ys[3], init);
      matmulShared(rt, xb, m, ws.map((w, i) => ({ w, y: ys[i], accumulate: i === 3 })), { numerics: 'llama.cpp' });
      await rt.sync();
      for (const [i, c] of cpus.entries()) {
        const got = await rt.buffers.readF32(ys[i], 0, m * c.rows);
        expectRowsClose(got, matmulRef(c, x, m, i === 3 ? init : undefined), m, `shared ${ggmlTypeName(c.type)} M=${m}`);
        rt.buffers.destroy(ys[i]);
      }
      rt.buffers.destroy(xb);
    }
    // 600 rows of 512 (1.2 MB) need a larger scratch than any earlier test in this file, while
    // the first dispatch, recorded but not yet submitted, reads the old one.
    const big = 600;
    const x1 = randomF32(k, 1), x2 = randomF32(big * k, 2);
    const b1 = rt.buffers.createWith('x1', x1), b2 = rt.buffers.createWith('x2', x2);
    const y1 = rt.buffers.create('y1', cpus[0].rows * 4), y2 = rt.buffers.create('y2', big * cpus[0].rows * 4);
    const before = rt.buffers.bytesAllocated;
    matmul(rt, ws[0], b1, y1, 1, { numerics: 'llama.cpp' });
    matmul(rt, ws[0], b2, y2, big, { numerics: 'llama.cpp' });
    expect(rt.buffers.bytesAllocated, 'the scratch grew').toBeGreaterThan(before);
    await rt.sync();
    expectRowsClose(await rt.buffers.readF32(y1, 0, cpus[0].rows), matmulRef(cpus[0], x1, 1), 1, 'before growth');
    expectRowsClose(await rt.buffers.readF32(y2, 0, big * cpus[0].rows), matmulRef(cpus[0], x2, big), big, 'after growth');
    for (const b of [b1, b2, y1, y2, ...ws.map((w) => w.buffer)]) rt.buffers.destroy(b);
  });
});

describe('F32 / F16 weights: summed in llama.cpp\'s order for each row (rows_llama)', () => {
  // K = 96: three 32-chunks; K = 40: one chunk and 8 dims after it; K = 36: not a multiple of 8
  // (tinyBLAS declines: every row single-row order). N = 10 is not a multiple of 4 (the same).
  const CASES: [GgmlType, number, number][] = [
    [GgmlType.F32, 96, 12], [GgmlType.F32, 40, 12], [GgmlType.F32, 36, 8], [GgmlType.F16, 96, 12], [GgmlType.F16, 40, 10],
  ];
  for (const [type, k, n] of CASES) {
    it(`${ggmlTypeName(type)} K=${k} N=${n}: one row, all rows as a prompt, and per-row orders, bit for bit`, async () => {
      const rt = await getRuntime();
      const cpu = randomWeight(type, n, k, 5000 + k + n);
      const w = upload(rt, cpu, `w.rows.${ggmlTypeName(type)}`);
      const x = randomF32(5 * k, 5100 + k, 3);
      const init = randomF32(5 * n, 5200 + k);
      expect(maxAbsDiff(await runLlama(rt, w, x, 1), matmulFloatLlamaRef(cpu, x, 1, () => true))).toBe(0);
      expect(maxAbsDiff(await runLlama(rt, w, x, 5, init), matmulFloatLlamaRef(cpu, x, 5, () => false, init))).toBe(0);
      // Sequences of 1, 2, 1 and 1 new tokens: (index, count) per row.
      const places = [[0, 1], [0, 2], [1, 2], [0, 1], [0, 1]];
      const rowPlaces = rt.buffers.createWith('rowPlaces', Uint32Array.from(places.flat()));
      const got = await runLlama(rt, w, x, 5, undefined, { rowPlaces });
      expect(maxAbsDiff(got, matmulFloatLlamaRef(cpu, x, 5, (r) => places[r][1] === 1))).toBe(0);
      // Both orders stay within float rounding of the exact sum.
      expectRowsClose(got, matmulRef(cpu, x, 5), 5, 'close to the double-precision sum');
      rt.buffers.destroy(rowPlaces);
    });
  }
});

describe('Q4_K / Q6_K weights: int8 Q8_K activations and integer sums (matmul_qk.wgsl), as llama.cpp', () => {
  const CASES: [GgmlType, number, number][] = [
    [GgmlType.Q4_K, 512, 24],
    [GgmlType.Q6_K, 512, 21],
  ];
  for (const [type, k, n] of CASES) {
    it(`${ggmlTypeName(type)} K=${k} N=${n}: GPU equals matmulQKRef bit for bit, and stays close to the exact sum`, async () => {
      const rt = await getRuntime();
      const cpu = randomWeight(type, n, k, 6000 + k + n);
      const w = upload(rt, cpu, `w.qk.${ggmlTypeName(type)}`);
      // M = 5: llama.cpp's Q4_K gemm takes rows 0-3 (sums per sub-block pair), its gemv row 4.
      for (const m of [1, 5]) {
        const x = randomF32(m * k, 6100 + m, 3);
        const init = randomF32(m * n, 6200 + m);
        const got = await runLlama(rt, w, x, m);
        expect(maxAbsDiff(got, matmulQKRef(cpu, x, m))).toBe(0);
        expect(maxAbsDiff(await runLlama(rt, w, x, m, init), matmulQKRef(cpu, x, m, init))).toBe(0);
        expectRowsClose(got, matmulRef(cpu, x, m), m, `M=${m} against the float sum of Q8_K-rounded x`);
      }
      rt.buffers.destroy(w.buffer);
    });
  }
});

describe('Q8_0 / Q4_0 weights: int8 activations and exact integer block sums (matmul_q8.wgsl), as llama.cpp vec_dot', () => {
  it('quant_q8_0 writes the int8 quants and f16-rounded scales of quantizeActivationsQ8_0, bit for bit', async () => {
    const rt = await getRuntime();
    const r = rng(31);
    const n = 2 * 1024;
    const x = randomF32(n, 32);
    for (let b = 0; b < n / 32; b++) {
      const s = 2 ** (Math.floor(r() * 31) - 20);
      for (let j = 0; j < 32; j++) x[b * 32 + j] *= s;
    }
    x.fill(0, 3 * 32, 4 * 32);
    for (let j = 0; j < 32; j++) x[5 * 32 + j] = j === 0 ? -127 : Math.floor(r() * 200) - 100 + 0.5;
    const xb = rt.buffers.createWith('x', x);
    const out = rt.buffers.create('xq', q8ActivationWords(n) * 4);
    quantizeActivationsQ8_0(rt, xb, out, n);
    await rt.sync();
    const view = new DataView(await rt.buffers.read(out, 0, q8ActivationWords(n) * 4));
    const want = quantizeActivationsQ8_0Ref(x);
    for (let b = 0; b < n / 32; b++) {
      const d = view.getFloat32(b * 36, true);
      if (d !== want.d[b]) expect.fail(`block ${b}: d ${d}, want ${want.d[b]}`);
      for (let j = 0; j < 32; j++) {
        const q = view.getInt8(b * 36 + 4 + j);
        if (q !== want.q[b * 32 + j]) expect.fail(`block ${b} element ${j}: q ${q}, want ${want.q[b * 32 + j]}`);
      }
    }
    expect(want.q.some((q) => q === -127) && want.q.some((q) => q === 127)).toBe(true);
    rt.buffers.destroy(xb);
    rt.buffers.destroy(out);
  });

  it('fmaF32 rounds once (double rounding of a * b + c is caught)', () => {
    const f = Math.fround;
    // a * b = 2^-24 (1 + 2^-12)(1 - 2^-12 + 2^-24) = 2^-24 + 2^-60, so a * b + 1 rounds in double
    // to the f32 midpoint 1 + 2^-24, which Math.fround takes to 1 (even); the exact sum is above
    // it, so fmaf gives 1 + 2^-23.
    const a = f(1 + 2 ** -12), b = f(2 ** -24 * (1 - 2 ** -12 + 2 ** -24)), c = 1;
    expect(a * b).toBe(2 ** -24 + 2 ** -60);
    expect(a * b + c).toBe(1 + 2 ** -24);
    expect(fmaF32(a, b, c)).toBe(1 + 2 ** -23);
    expect(fmaF32(3, 5, 0.5)).toBe(15.5);
    expect(fmaF32(f(0.1), 3, f(-0.3))).toBe(f(f(0.1) * 3 + f(-0.3)));
  });

  // GEMV with one thread per row pair (SwiftShader's split) and GEMM keep llama.cpp's order: equal
  // to the reference bit for bit. Split GEMV sums the threads' partials in a tree: within 1e-6.
  const CASES: [GgmlType, number, number][] = [
    [GgmlType.Q8_0, 256, 37],
    [GgmlType.Q4_0, 320, 67],
    [GgmlType.Q4_0, 192, 40], // a multiple of 8 rows: llama.cpp's repacked order
  ];
  for (const [type, k, n] of CASES) {
    it(`${ggmlTypeName(type)} K=${k} N=${n}: GPU equals matmulQ8Ref exactly (GEMV split 1, GEMM), closely (split GEMV)`, async () => {
      const rt = await getRuntime();
      const cpu = randomWeight(type, n, k, 4000 + k);
      const w = upload(rt, cpu, `w.q8.${ggmlTypeName(type)}`);
      for (const m of [1, 3, 16, 70]) {
        const x = randomF32(m * k, 4100 + m, 3);
        const init = randomF32(m * n, 4200 + m);
        const want = matmulQ8Ref(cpu, x, m);
        const wantAcc = matmulQ8Ref(cpu, x, m, init);
        const exactPaths: MatmulOptions[] = [{ path: 'gemm' }];
        if (m <= GEMV_MAX_ROWS) exactPaths.push({ path: 'gemv', gemvSplit: 1 });
        for (const opts of exactPaths) {
          const got = await runLlama(rt, w, x, m, undefined, opts);
          for (let i = 0; i < got.length; i++) {
            if (got[i] !== want[i]) expect.fail(`M=${m} ${JSON.stringify(opts)} element ${i}: GPU ${got[i]}, reference ${want[i]}`);
          }
          const gotAcc = await runLlama(rt, w, x, m, init, opts);
          for (let i = 0; i < got.length; i++) {
            if (gotAcc[i] !== wantAcc[i]) expect.fail(`M=${m} accumulate ${JSON.stringify(opts)} element ${i}: GPU ${gotAcc[i]}, reference ${wantAcc[i]}`);
          }
        }
        if (m <= GEMV_MAX_ROWS) {
          for (const split of [2, 64] as const) {
            const got = await runLlama(rt, w, x, m, undefined, { gemvSplit: split });
            let mag = 0;
            for (const v of want) mag = Math.max(mag, Math.abs(v));
            expect(maxAbsDiff(got, want), `M=${m} split ${split}`).toBeLessThanOrEqual(1e-6 * mag);
          }
        }
        // The integer sums are not the f32 sums of x' * w: the two paths differ (by rounding only).
        const viaFloats = matmulRef(cpu, x, m, undefined, { activations: 'exact' });
        expect(maxAbsDiff(want, viaFloats)).toBeGreaterThan(0);
      }
      rt.buffers.destroy(w.buffer);
    });
  }
});

describe('fast set: GEMV for decode rows, tiled GEMM in the same order for prompt rows, bitwise batch invariant', () => {
  /** The fast set's reference: f32 x for float weights, int8 Q8_0 blocks for Q8_0 / Q4_0, Q8_K blocks for K-quants. */
  function fastRef(rt: GpuRuntime, cpu: CpuWeight, x: Float32Array, m: number, init?: Float32Array, split = 1): Float32Array {
    if (cpu.type === GgmlType.Q8_0 || cpu.type === GgmlType.Q4_0) return matmulQ8GemvRef(cpu, x, m, init, split, rt.arithmetic.fusedFma);
    if (cpu.type === GgmlType.Q4_K || cpu.type === GgmlType.Q6_K) return matmulQKGemvRef(cpu, x, m, init, split, rt.arithmetic.fusedFma);
    return matmulRef(cpu, x, m, init, { activations: 'exact' });
  }

  /** Quantized results equal their reference bit for bit (the order is the shader's); float ones are close. */
  function expectFast(got: Float32Array, want: Float32Array, type: GgmlType, m: number, what: string): void {
    if (type === GgmlType.F32 || type === GgmlType.F16 || type === GgmlType.BF16) return expectRowsClose(got, want, m, what);
    for (let i = 0; i < want.length; i++) {
      if (!Object.is(got[i], want[i])) expect.fail(`${what}: element ${i}: GPU ${got[i]}, reference ${want[i]}`);
    }
  }

  for (const [type, shapes] of SHAPES) {
    for (const [k, n] of shapes) {
      it(`${ggmlTypeName(type)} K=${k} N=${n}, M in ${MS.join(', ')}, plain and accumulating, GEMV splits 1, 2, 64`, async () => {
        const rt = await getRuntime();
        const cpu = randomWeight(type, n, k, k * 1000 + n);
        const w = upload(rt, cpu, `w.fast.${ggmlTypeName(type)}`);
        for (const m of MS) {
          const x = randomF32(m * k, m + 7);
          expectFast(await runMatmul(rt, w, x, m, undefined, { gemvSplit: 1 }), fastRef(rt, cpu, x, m), type, m, `M=${m}`);
        }
        for (const m of [3, 40]) {
          const x = randomF32(m * k, m + 9);
          const init = randomF32(m * n, m + 11, 4);
          expectFast(await runMatmul(rt, w, x, m, init, { gemvSplit: 1 }), fastRef(rt, cpu, x, m, init), type, m, `accumulate M=${m}`);
        }
        for (const m of [5, 40]) {
          const x = randomF32(m * k, 13 + m);
          for (const gemvSplit of [1, 2, 64] as const) {
            expectFast(await runMatmul(rt, w, x, m, undefined, { gemvSplit }), fastRef(rt, cpu, x, m, undefined, gemvSplit), type, m, `M=${m} split ${gemvSplit}`);
          }
        }
        rt.buffers.destroy(w.buffer);
      });
    }
  }

  describe.each(KERNEL_SHAPES)('a row computes the same bits alone, in any batch size and at any place in it ($name)', (shape) => {
    it.each(SHAPES.map(([type, shapes]) => [ggmlTypeName(type), type, shapes[0]] as const))('%s', async (_, type, [k, n]) => {
      const rt = await getRuntime();
      useShapes(rt, shape.software);
      const cpu = randomWeight(type, n, k, 77 + k);
      const w = upload(rt, cpu, `w.invariant.${ggmlTypeName(type)}`);
      const all = 37;
      const x = randomF32(all * k, 78 + k);
      for (const gemvSplit of [undefined, 2, 64] as const) {
        const opts = { gemvSplit };
        const full = await runMatmul(rt, w, x, all, undefined, opts);
        // Windows of the batch: rows alone, a pair, tiles that straddle row tiles.
        for (const [from, m] of [[0, 1], [36, 1], [3, 2], [2, 17]] as const) {
          const part = await runMatmul(rt, w, x.subarray(from * k, (from + m) * k), m, undefined, opts);
          const want = full.subarray(from * n, (from + m) * n);
          for (let i = 0; i < part.length; i++) {
            if (!Object.is(part[i], want[i])) {
              expect.fail(`split ${gemvSplit ?? 'default'}: rows ${from}..${from + m - 1} alone differ from the batch of ${all} at ${i}: ${part[i]} vs ${want[i]}`);
            }
          }
        }
      }
      rt.buffers.destroy(w.buffer);
    });
  });

  it('the tiled GEMM computes the GEMV\'s bits for any M and split (forced paths)', async () => {
    const rt = await getRuntime();
    const cases = [[GgmlType.F16, 260, 67], [GgmlType.Q8_0, 96, 130], [GgmlType.Q4_0, 160, 67], [GgmlType.Q4_K, 512, 67], [GgmlType.Q6_K, 768, 70]] as const;
    // With the subgroups feature (SwiftShader has it, subgroups of 4) the GEMV adds lanes by a
    // subgroup butterfly where a group fits a subgroup, else in workgroup memory: the same bits.
    const trees = rt.gpu.features.subgroups ? (['shared', 'subgroups'] as const) : (['shared'] as const);
    for (const [type, k, n] of cases) {
      const w = upload(rt, randomWeight(type, n, k, 5 + k), `w.lanes.${ggmlTypeName(type)}`);
      for (const m of [3, 33]) {
        const x = randomF32(m * k, 17 + m);
        for (const gemvSplit of [1, 2, 4, 64] as const) {
          const gemm = await runMatmul(rt, w, x, m, undefined, { gemvSplit, path: 'gemm' });
          for (const gemvTree of trees) {
            const gemv = await runMatmul(rt, w, x, m, undefined, { gemvSplit, gemvTree, path: 'gemv' });
            for (let i = 0; i < gemv.length; i++) {
              if (!Object.is(gemm[i], gemv[i])) expect.fail(`${ggmlTypeName(type)} M=${m} split ${gemvSplit}: element ${i}: GEMM ${gemm[i]}, GEMV (${gemvTree} tree) ${gemv[i]}`);
            }
          }
        }
      }
      rt.buffers.destroy(w.buffer);
    }
  }, 600_000);
});

describe('embedding kernel', () => {
  it('looks up rows of every type, with zeros for out-of-range ids', async () => {
    const rt = await getRuntime();
    for (const [type, shapes] of SHAPES) {
      const [k, n] = shapes[shapes.length - 1];
      const cpu = randomWeight(type, n, k, 17);
      const w = upload(rt, cpu, `emb.${ggmlTypeName(type)}`);
      const ids = Int32Array.from([0, n - 1, 5, 5, -1, n, 12]);
      const want = embedRef(cpu, ids);
      expectRowsClose(await runEmbed(rt, w, ids), want, ids.length, ggmlTypeName(type));
      // A 2D grid (folded at 2 workgroups per dimension) gives the same rows.
      expectRowsClose(await runEmbed(rt, w, ids, 2), want, ids.length, `${ggmlTypeName(type)} 2D`);
      expect(want.subarray(4 * k, 6 * k).every((v) => v === 0)).toBe(true);
    }
  });
});

interface LoadedModel {
  weight(name: string): CpuWeight;
}

function loadModel(file: string): LoadedModel {
  const buf = readFileSync(join(MODELS, file));
  const bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  const header = parseGgufHeader(bytes, file, bytes.byteLength);
  const byName = new Map<string, TensorInfo>(header.tensors.map((t) => [t.name, t]));
  return {
    weight(name) {
      const t = byName.get(name);
      if (!t) throw new Error(`${file} has no tensor ${name}`);
      const rows = t.dims.slice(1).reduce((a, b) => a * b, 1);
      return { type: t.type, rows, cols: t.dims[0], bytes: bytes.subarray(t.offset, t.offset + t.byteLength) };
    },
  };
}

describe('dequantizing real GGUF tensors on the GPU (embedding kernel) agrees with quant.ts', () => {
  const cases: [string, string, GgmlType, number[] | 'all'][] = [
    ['wg-llama-spm-q4_k_m.gguf', 'blk.0.attn_q.weight', GgmlType.Q4_K, 'all'],
    ['wg-llama-spm-q4_k_m.gguf', 'blk.0.attn_v.weight', GgmlType.Q6_K, 'all'],
    ['wg-llama-spm-q4_k_m.gguf', 'output.weight', GgmlType.Q6_K, [0, 1, 2, 1000, 20000, 31999]],
    ['wg-llama-spm-q4_k_m.gguf', 'token_embd.weight', GgmlType.Q4_K, [0, 1, 29871, 31999]],
    ['wg-tolstoy-q8_0.gguf', 'token_embd.weight', GgmlType.Q8_0, 'all'],
    ['wg-llama-spm-q4_0.gguf', 'blk.0.attn_q.weight', GgmlType.Q4_0, 'all'],
    ['llama-2-tiny-random.gguf', 'token_embd.weight', GgmlType.F16, [0, 1, 2, 15043, 31999]],
    ['wg-llama-spm-f32.gguf', 'token_embd.weight', GgmlType.F32, [0, 7, 31999]],
  ];
  for (const [file, name, type, rowIds] of cases) {
    it(`${file} ${name} (${ggmlTypeName(type)})`, async () => {
      const rt = await getRuntime();
      const cpu = loadModel(file).weight(name);
      expect(cpu.type).toBe(type);
      const w = upload(rt, cpu, name);
      const ids = rowIds === 'all' ? Int32Array.from({ length: cpu.rows }, (_, i) => i) : Int32Array.from(rowIds);
      const got = await runEmbed(rt, w, ids);
      const want = embedRef(cpu, ids);
      expect(want.every(Number.isFinite)).toBe(true);
      expect(want.some((v) => v !== 0)).toBe(true);
      expectRowsClose(got, want, ids.length, name);
      rt.buffers.destroy(w.buffer);
    });
  }
});

describe('errors', () => {
  it('an unsupported weight type names the tensor and the type', async () => {
    const rt = await getRuntime();
    const upload = () => uploadWeight(rt, 'blk.0.attn_q.weight', GgmlType.Q5_K, [256, 4], new Uint8Array(4 * 176));
    expect(upload).toThrow(UnsupportedTensorTypeError);
    expect(upload).toThrow(/blk\.0\.attn_q\.weight.*Q5_K/);
  });

  it('a row length that is not a multiple of 4 is refused with the tensor name', async () => {
    const rt = await getRuntime();
    const w = uploadWeight(rt, 'odd.weight', GgmlType.F32, [6, 2], new Uint8Array(48));
    const x = rt.buffers.create('x', 64);
    expect(() => matmul(rt, w, x, x, 1)).toThrow(/odd\.weight \(F32\).*6/);
  });
});
