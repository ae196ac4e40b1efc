import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { GpuRuntime } from '../../src/gpu/index.js';
import { GgmlType, ggmlTypeName, parseGgufHeader, type TensorInfo } from '../../src/model/gguf.js';
import { embed } from '../../src/model/kernels/embedding.js';
import { GEMV_MAX_ROWS, matmul, uploadWeight, type GpuWeight, type MatmulOptions } from '../../src/model/kernels/matmul.js';
import { embedRef, matmulRef, type CpuWeight } from '../../src/model/kernels/matmul.reference.js';
import { UnsupportedTensorTypeError } from '../../src/model/quant.js';
import { quantize, randomKQuant } from '../../src/model/quantize.js';
import { getRuntime, randomF32, rng } from '../helpers/gpu.js';

const MODELS = join(__dirname, '../../../shared/models');
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

describe('matmul kernels (GEMV for M <= 16, tiled GEMM above) match the CPU reference', () => {
  for (const [type, shapes] of SHAPES) {
    for (const [k, n] of shapes) {
      it(`${ggmlTypeName(type)} K=${k} N=${n}, M in ${MS.join(', ')}, plain and accumulating`, async () => {
        const rt = await getRuntime();
        const cpu = randomWeight(type, n, k, k * 1000 + n);
        const w = upload(rt, cpu, `w.${ggmlTypeName(type)}`);
        for (const m of MS) {
          const x = randomF32(m * k, m + 7);
          expectRowsClose(await runMatmul(rt, w, x, m), matmulRef(cpu, x, m), m, `M=${m}`);
        }
        for (const m of [3, 40]) {
          const x = randomF32(m * k, m + 9);
          const init = randomF32(m * n, m + 11, 4);
          expectRowsClose(await runMatmul(rt, w, x, m, init), matmulRef(cpu, x, m, init), m, `accumulate M=${m}`);
        }
        // The GEMV thread split a hardware GPU would use, and the GEMM path on a small batch.
        const x5 = randomF32(5 * k, 13);
        const want5 = matmulRef(cpu, x5, 5);
        const variants: MatmulOptions[] = [{ gemvSplit: 64, subgroups: false }, { gemvSplit: 2 }, { path: 'gemm' }];
        if (rt.gpu.features.subgroups) variants.push({ gemvSplit: 64, subgroups: true });
        for (const opts of variants) {
          expectRowsClose(await runMatmul(rt, w, x5, 5, undefined, opts), want5, 5, `M=5 ${JSON.stringify(opts)}`);
        }
        rt.buffers.destroy(w.buffer);
      });
    }
  }

  it('covers every GEMV row bucket (M = 1..16) and the first GEMM size', async () => {
    const rt = await getRuntime();
    const cpu = randomWeight(GgmlType.Q8_0, 45, 64, 5);
    const w = upload(rt, cpu, 'w.buckets');
    for (let m = 1; m <= GEMV_MAX_ROWS + 1; m++) {
      const x = randomF32(m * 64, 100 + m);
      expectRowsClose(await runMatmul(rt, w, x, m), matmulRef(cpu, x, m), m, `M=${m}`);
    }
  });

  it('handles a vocabulary-sized N, and a GEMV grid folded into 2D', async () => {
    const rt = await getRuntime();
    const n = 140_001;
    const cpu = randomWeight(GgmlType.F16, n, 8, 6);
    const w = upload(rt, cpu, 'w.wide');
    for (const m of [1, 3]) {
      const x = randomF32(m * 8, 200 + m);
      expectRowsClose(await runMatmul(rt, w, x, m), matmulRef(cpu, x, m), m, `M=${m}`);
    }
    // A real GPU's split of 64 threads per 2 rows needs 70001 workgroups; SwiftShader runs that
    // slowly, so the same folding is checked with a smaller per-dimension limit.
    const x = randomF32(3 * 8, 203);
    const opts = { gemvSplit: 64, maxGroupsPerDim: 1000 } as const;
    const cpuSmall = randomWeight(GgmlType.F16, 3001, 8, 7);
    const small = upload(rt, cpuSmall, 'w.folded');
    expectRowsClose(await runMatmul(rt, small, x, 3, undefined, opts), matmulRef(cpuSmall, x, 3), 3, 'folded grid');
  });

  it('matmul with a real Q6_K tensor (ffn_down of wg-llama-spm-q4_k_m)', async () => {
    const rt = await getRuntime();
    const model = loadModel('wg-llama-spm-q4_k_m.gguf');
    const cpu = model.weight('blk.0.ffn_down.weight');
    expect(cpu.type).toBe(GgmlType.Q6_K);
    const w = upload(rt, cpu, 'blk.0.ffn_down.weight');
    for (const m of [2, 24]) {
      const x = randomF32(m * cpu.cols, 300 + m);
      expectRowsClose(await runMatmul(rt, w, x, m), matmulRef(cpu, x, m), m, `M=${m}`);
    }
  });
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
