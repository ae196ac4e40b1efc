// CPU references of the matmul and embedding kernels, over GGUF-layout weight bytes.
import { GgmlType } from '../gguf.js';
import { activationGrid, dequantize, f16ToF32, q4kScaleMin } from '../quant.js';
import { quantizeActivationsQ8_0, quantizeActivationsQ8K, roundActivations } from '../quantize.js';

export interface CpuWeight {
  type: GgmlType;
  /** N */
  rows: number;
  /** K */
  cols: number;
  /** GGUF-layout bytes of rows x cols elements. */
  bytes: Uint8Array;
}

export interface MatmulRefOptions {
  /** As MatmulOptions.activations: 'llama.cpp' (default) rounds x as the GPU wrapper does. */
  activations?: 'llama.cpp' | 'exact';
}

/**
 * y[m, n] = (init[m, n] +) sum_k x'[m, k] * W[n, k], summed in double precision, where x' is x
 * rounded onto the weight type's activation grid (roundActivations) unless activations: 'exact'.
 * Q8_0 / Q4_0 weights with llama.cpp activations: matmulQ8Ref (integer block sums, f32 as llama.cpp).
 */
export function matmulRef(w: CpuWeight, x: Float32Array, m: number, init?: Float32Array, opts: MatmulRefOptions = {}): Float32Array {
  if (opts.activations !== 'exact' && (w.type === GgmlType.Q8_0 || w.type === GgmlType.Q4_0)) return matmulQ8Ref(w, x, m, init);
  const wf = dequantize(w.type, w.bytes, w.rows * w.cols);
  const grid = opts.activations === 'exact' ? null : activationGrid(w.type);
  if (grid) x = roundActivations(grid, x.subarray(0, m * w.cols));
  const y = new Float32Array(m * w.rows);
  for (let r = 0; r < m; r++) {
    for (let n = 0; n < w.rows; n++) {
      let s = init ? init[r * w.rows + n] : 0;
      for (let k = 0; k < w.cols; k++) s += x[r * w.cols + k] * wf[n * w.cols + k];
      y[r * w.rows + n] = s;
    }
  }
  return y;
}

const f32 = Math.fround;

/** One K-quant block's integer parts: unsigned quants, per-group scales (and mins), d (and dmin). */
interface KBlock {
  q: Uint8Array;
  scales: Int32Array;
  mins: Int32Array;
  d: number;
  dmin: number;
}

/** Q4_K (8 sub-blocks of 32, 6-bit scale and min each) or Q6_K (16 groups of 16, int8 scale) block at byte `at`. */
function kBlock(type: GgmlType, v: DataView, at: number): KBlock {
  const q = new Uint8Array(256);
  if (type === GgmlType.Q4_K) {
    const scale = (i: number) => v.getUint8(at + 4 + i);
    const scales = new Int32Array(8), mins = new Int32Array(8);
    for (let j = 0; j < 8; j++) [scales[j], mins[j]] = q4kScaleMin(scale, j);
    for (let c = 0; c < 4; c++) {
      for (let l = 0; l < 32; l++) {
        const byte = v.getUint8(at + 16 + 32 * c + l);
        q[64 * c + l] = byte & 0xf;
        q[64 * c + 32 + l] = byte >> 4;
      }
    }
    return { q, scales, mins, d: f16ToF32(v.getUint16(at, true)), dmin: f16ToF32(v.getUint16(at + 2, true)) };
  }
  for (let n = 0; n < 2; n++) {
    const ql = at + 64 * n, qh = at + 128 + 32 * n;
    for (let l = 0; l < 32; l++) {
      const h = v.getUint8(qh + l);
      q[128 * n + l] = (v.getUint8(ql + l) & 0xf) | ((h & 3) << 4);
      q[128 * n + l + 32] = (v.getUint8(ql + l + 32) & 0xf) | (((h >> 2) & 3) << 4);
      q[128 * n + l + 64] = (v.getUint8(ql + l) >> 4) | (((h >> 4) & 3) << 4);
      q[128 * n + l + 96] = (v.getUint8(ql + l + 32) >> 4) | (((h >> 6) & 3) << 4);
    }
  }
  const scales = Int32Array.from({ length: 16 }, (_, i) => v.getInt8(at + 192 + i));
  return { q, scales, mins: new Int32Array(0), d: f16ToF32(v.getUint16(at + 208, true)), dmin: 0 };
}

/** Every block of a Q4_K / Q6_K weight, row by row (row n, block b at n * cols / 256 + b). */
function kBlocks(w: CpuWeight): KBlock[] {
  const blockBytes = w.type === GgmlType.Q4_K ? 144 : 210;
  const view = new DataView(w.bytes.buffer, w.bytes.byteOffset, w.bytes.byteLength);
  return Array.from({ length: (w.rows * w.cols) / 256 }, (_, i) => kBlock(w.type, view, i * blockBytes));
}

/**
 * Q4_K (a multiple of 8 rows) and Q6_K weights as llama.cpp's x86 AVX2 build computes them
 * against Q8_K activations (the reference of matmul_qk.wgsl, whose header has the formulas).
 * place(r): row r's (index, count) in its llama.cpp batch; default the m rows as one batch.
 */
export function matmulQKRef(w: CpuWeight, x: Float32Array, m: number, init?: Float32Array,
  place: (r: number) => [number, number] = (r) => [r, m]): Float32Array {
  const nb = w.cols / 256;
  const xq = quantizeActivationsQ8K(x.subarray(0, m * w.cols));
  const blocks = kBlocks(w);
  const y = new Float32Array(m * w.rows);
  for (let r = 0; r < m; r++) {
    for (let n = 0; n < w.rows; n++) {
      const lanes = new Float32Array(8);
      let acc = 0, accMin = 0;
      for (let b = 0; b < nb; b++) {
        const wb = blocks[n * nb + b];
        const xb = r * nb + b;
        const q8 = xq.q.subarray(xb * 256, (xb + 1) * 256);
        const bsums = xq.bsums.subarray(xb * 16, (xb + 1) * 16);
        if (w.type === GgmlType.Q4_K) {
          const [index, count] = place(r);
          const span = index < Math.floor(count / 4) * 4 ? 2 : 8;
          for (let sb0 = 0; sb0 < 8; sb0 += span) {
            let isum = 0, imin = 0;
            for (let sb = sb0; sb < sb0 + span; sb++) {
              let s = 0;
              for (let e = 32 * sb; e < 32 * sb + 32; e++) s += wb.q[e] * q8[e];
              isum += wb.scales[sb] * s;
              imin += wb.mins[sb] * (bsums[2 * sb] + bsums[2 * sb + 1]);
            }
            acc = fmaF32(f32(isum), f32(wb.d * xq.d[xb]), acc);
            accMin = fmaF32(f32(imin), f32(wb.dmin * xq.d[xb]), accMin);
          }
          continue;
        }
        const d = f32(xq.d[xb] * wb.d);
        for (let lane = 0; lane < 8; lane++) {
          let sum = 0;
          for (let c = 0; c < 8; c++) {
            for (let e = 32 * c + 4 * lane; e < 32 * c + 4 * lane + 4; e++) sum += wb.scales[e >> 4] * wb.q[e] * q8[e];
          }
          sum -= 32 * (wb.scales[2 * lane] * bsums[2 * lane] + wb.scales[2 * lane + 1] * bsums[2 * lane + 1]);
          lanes[lane] = fmaF32(d, f32(sum), lanes[lane]);
        }
      }
      let v: number;
      if (w.type === GgmlType.Q4_K) v = f32(acc - accMin);
      else {
        const a = [0, 1, 2, 3].map((i) => f32(lanes[4 + i] + lanes[i]));
        v = f32(f32(a[0] + a[2]) + f32(a[1] + a[3]));
      }
      y[r * w.rows + n] = init ? f32(init[r * w.rows + n] + v) : v;
    }
  }
  return y;
}

/** ggml_vec_dot_f32 / ggml_vec_dot_f16 (x86 AVX2) of two rows: see matmul.wgsl rows_llama (and attention.wgsl score_f16). */
export function ggmlVecDot(x: ArrayLike<number>, w: ArrayLike<number>): number {
  const acc = new Float32Array(32);
  const whole = x.length - (x.length % 32);
  for (let c = 0; c < whole; c += 32) for (let i = 0; i < 32; i++) acc[i] = fmaF32(x[c + i], w[c + i], acc[i]);
  const v = Array.from({ length: 8 }, (_, l) => f32(f32(acc[l] + acc[16 + l]) + f32(acc[8 + l] + acc[24 + l])));
  const t = [0, 1, 2, 3].map((i) => f32(v[i] + v[4 + i]));
  let s = f32(f32(t[0] + t[1]) + f32(t[2] + t[3]));
  for (let k = whole; k < x.length; k++) s += f32(x[k] * w[k]);
  return f32(s);
}

/** tinyBLAS's order (x86 AVX2, K a multiple of 8). */
function dotGemmOrder(x: Float32Array, w: Float32Array): number {
  const lanes = new Float32Array(8);
  for (let c = 0; c < x.length; c += 8) for (let l = 0; l < 8; l++) lanes[l] = fmaF32(x[c + l], w[c + l], lanes[l]);
  const a = [0, 1, 2, 3].map((i) => f32(lanes[4 + i] + lanes[i]));
  return f32(f32(a[0] + a[2]) + f32(a[1] + a[3]));
}

/**
 * F32 / F16 weights with llama.cpp activations, summed as llama.cpp's x86 AVX2 build does for each
 * row (the reference of matmul.wgsl rows_llama): rows for which singleRow(r) holds, and every row
 * when tinyBLAS cannot take the shape (K % 8, N % 4), as ggml_vec_dot; others as tinyBLAS.
 */
export function matmulFloatLlamaRef(w: CpuWeight, x: Float32Array, m: number, singleRow: (r: number) => boolean, init?: Float32Array): Float32Array {
  const wf = dequantize(w.type, w.bytes, w.rows * w.cols);
  const grid = activationGrid(w.type);
  const xr = grid ? roundActivations(grid, x.subarray(0, m * w.cols)) : x;
  const gemmOk = w.cols % 8 === 0 && w.rows % 4 === 0;
  const y = new Float32Array(m * w.rows);
  for (let r = 0; r < m; r++) {
    const xrow = xr.subarray(r * w.cols, (r + 1) * w.cols);
    for (let n = 0; n < w.rows; n++) {
      const wrow = wf.subarray(n * w.cols, (n + 1) * w.cols);
      const v = singleRow(r) || !gemmOk ? ggmlVecDot(xrow, wrow) : dotGemmOrder(xrow, wrow);
      y[r * w.rows + n] = init ? f32(init[r * w.rows + n] + v) : v;
    }
  }
  return y;
}

/** out[t, :] = W row tokenIds[t], or zeros for an id outside [0, rows). */
export function embedRef(w: CpuWeight, tokenIds: Int32Array): Float32Array {
  const wf = dequantize(w.type, w.bytes, w.rows * w.cols);
  const out = new Float32Array(tokenIds.length * w.cols);
  tokenIds.forEach((id, t) => {
    if (id >= 0 && id < w.rows) out.set(wf.subarray(id * w.cols, (id + 1) * w.cols), t * w.cols);
  });
  return out;
}

const f32Bits = new Float32Array(1);
const u32Bits = new Uint32Array(f32Bits.buffer);

/** The f32 next to f (finite, nonzero direction) towards +inf (up) or -inf. */
function nextF32(f: number, up: boolean): number {
  f32Bits[0] = f;
  if (f === 0) u32Bits[0] = up ? 1 : 0x80000001;
  else if (f > 0 === up) u32Bits[0] += 1;
  else u32Bits[0] -= 1;
  return f32Bits[0];
}

/** fmaf(a, b, c) for f32 a, b, c: a * b + c rounded once (a * b is exact in double here). */
export function fmaF32(a: number, b: number, c: number): number {
  const p = a * b;
  const s = p + c;
  const f = Math.fround(s);
  if (f === s) return f;
  // s may itself be rounded (p + c needs more than 53 bits); that only matters when s lands
  // exactly halfway between two f32s, where the exact sum's side decides.
  const bp = s - c;
  const e = p - bp + (c - (s - bp));
  if (e === 0) return f;
  const other = nextF32(f, s > f);
  if ((f + other) / 2 !== s) return f;
  return e > 0 === other > f ? other : f;
}

/** The int8 quants (Q4_0: nibble - 8) and f16 scales of Q8_0 / Q4_0 weight blocks. */
function weightQuants(w: CpuWeight): { q: Int8Array; d: Float32Array } {
  const blocks = (w.rows * w.cols) / 32;
  const q = new Int8Array(blocks * 32);
  const d = new Float32Array(blocks);
  const v = new DataView(w.bytes.buffer, w.bytes.byteOffset, w.bytes.byteLength);
  const size = w.type === GgmlType.Q8_0 ? 34 : 18;
  for (let b = 0; b < blocks; b++) {
    const at = b * size;
    d[b] = f16ToF32(v.getUint16(at, true));
    for (let j = 0; j < 32; j++) {
      if (w.type === GgmlType.Q8_0) q[b * 32 + j] = v.getInt8(at + 2 + j);
      else q[b * 32 + j] = j < 16 ? (v.getUint8(at + 2 + j) & 0xf) - 8 : (v.getUint8(at + 2 + j - 16) >> 4) - 8;
    }
  }
  return { q, d };
}

/** fma(a, b, c) as the device computes it: rounded once, or (SwiftShader) the product rounded first. */
function deviceFma(fusedFma: boolean): (a: number, b: number, c: number) => number {
  return fusedFma ? fmaF32 : (a, b, c) => f32(f32(a * b) + c);
}

/**
 * The fast set's order for quantized weights (its GEMV and tiled GEMM alike): lane l of `split`
 * adds blocks l, l + split, ... in order, `addBlock(acc, r, n, b)` giving the lane's new value;
 * then the lanes are added in gemv_reduce.wgsl's tree (stride split / 2 down to 1), and init in f32.
 */
function laneOrderRef(m: number, rows: number, nb: number, split: number, init: Float32Array | undefined,
  addBlock: (acc: number, r: number, n: number, b: number) => number): Float32Array {
  const y = new Float32Array(m * rows);
  const lanes = new Float32Array(split);
  for (let r = 0; r < m; r++) {
    for (let n = 0; n < rows; n++) {
      lanes.fill(0);
      for (let b = 0; b < nb; b++) lanes[b % split] = addBlock(lanes[b % split], r, n, b);
      for (let stride = split / 2; stride >= 1; stride /= 2) {
        for (let l = 0; l < stride; l++) lanes[l] = f32(lanes[l] + lanes[l + stride]);
      }
      y[r * rows + n] = init ? f32(init[r * rows + n] + lanes[0]) : lanes[0];
    }
  }
  return y;
}

/**
 * Q4_K / Q6_K weights as the fast set computes them (shaders/matmul_qk_gemv.wgsl): x quantized to
 * Q8_K blocks, each block's exact integer sums scaled by fmas (the shader header's formulas), in
 * laneOrderRef's order. `fusedFma`: whether the device's fma() rounds once
 * (GpuRuntime.arithmetic.fusedFma; SwiftShader's rounds twice).
 */
export function matmulQKGemvRef(w: CpuWeight, x: Float32Array, m: number, init?: Float32Array, split = 1, fusedFma = true): Float32Array {
  const fma = deviceFma(fusedFma);
  const nb = w.cols / 256;
  const xq = quantizeActivationsQ8K(x.subarray(0, m * w.cols));
  const blocks = kBlocks(w);
  return laneOrderRef(m, w.rows, nb, split, init, (acc, r, n, b) => {
    const wb = blocks[n * nb + b];
    const xb = r * nb + b;
    const q8 = xq.q.subarray(xb * 256, (xb + 1) * 256);
    const bsums = xq.bsums.subarray(xb * 16, (xb + 1) * 16);
    const dx = xq.d[xb];
    let isum = 0, imin = 0;
    for (let e = 0; e < 256; e++) isum += wb.scales[w.type === GgmlType.Q4_K ? e >> 5 : e >> 4] * wb.q[e] * q8[e];
    if (w.type === GgmlType.Q4_K) {
      for (let sb = 0; sb < 8; sb++) imin += wb.mins[sb] * (bsums[2 * sb] + bsums[2 * sb + 1]);
      return fma(-f32(wb.dmin * dx), f32(imin), fma(f32(wb.d * dx), f32(isum), acc));
    }
    for (let g = 0; g < 16; g++) isum -= 32 * wb.scales[g] * bsums[g];
    return fma(f32(wb.d * dx), f32(isum), acc);
  });
}

/**
 * Q8_0 / Q4_0 weights as the fast set computes them (matmul_q8.wgsl ONE_SUM): x quantized to Q8_0
 * blocks, each block's exact integer sum scaled by one fma, acc = fma(d_w * d_x, isum, acc), in
 * laneOrderRef's order. `fusedFma` as matmulQKGemvRef.
 */
export function matmulQ8GemvRef(w: CpuWeight, x: Float32Array, m: number, init?: Float32Array, split = 1, fusedFma = true): Float32Array {
  const fma = deviceFma(fusedFma);
  const nb = w.cols / 32;
  const xq = quantizeActivationsQ8_0(x.subarray(0, m * w.cols));
  const wq = weightQuants(w);
  return laneOrderRef(m, w.rows, nb, split, init, (acc, r, n, b) => {
    const xb = r * nb + b, wb = n * nb + b;
    let isum = 0;
    for (let i = 0; i < 32; i++) isum += wq.q[wb * 32 + i] * xq.q[xb * 32 + i];
    return fma(f32(wq.d[wb] * xq.d[xb]), isum, acc);
  });
}

/**
 * Q8_0 / Q4_0 weights as llama.cpp's CPU computes them (ggml_vec_dot_q8_0_q8_0 /
 * ggml_vec_dot_q4_0_q8_0, x86 AVX2): x quantized to Q8_0 blocks (quantizeActivationsQ8_0); per
 * block and lane j < 8 the exact integer sum of elements 4j .. 4j+3, acc[j] = fmaf(d_w * d_x,
 * isum_j, acc[j]) over the blocks in order, then hsum_float_8; init added in f32. Q4_0 weights
 * with a multiple of 8 rows take llama.cpp's repacked kernel instead (ggml_gemv_q4_0_8x8_q8_0):
 * one block sum, acc = fmaf(isum, d_w * d_x, acc). The reference of shaders/matmul_q8.wgsl.
 */
export function matmulQ8Ref(w: CpuWeight, x: Float32Array, m: number, init?: Float32Array): Float32Array {
  const nb = w.cols / 32;
  const xq = quantizeActivationsQ8_0(x.subarray(0, m * w.cols));
  const wq = weightQuants(w);
  const y = new Float32Array(m * w.rows);
  const acc = new Float32Array(8);
  const repacked = w.type === GgmlType.Q4_0 && w.rows % 8 === 0;
  for (let r = 0; r < m; r++) {
    for (let n = 0; n < w.rows; n++) {
      acc.fill(0);
      for (let b = 0; b < nb; b++) {
        const xb = r * nb + b, wb = n * nb + b;
        const d = Math.fround(wq.d[wb] * xq.d[xb]);
        if (repacked) {
          let isum = 0;
          for (let i = 0; i < 32; i++) isum += wq.q[wb * 32 + i] * xq.q[xb * 32 + i];
          acc[0] = fmaF32(d, isum, acc[0]);
          continue;
        }
        for (let j = 0; j < 8; j++) {
          let isum = 0;
          for (let i = 4 * j; i < 4 * j + 4; i++) isum += wq.q[wb * 32 + i] * xq.q[xb * 32 + i];
          acc[j] = fmaF32(d, isum, acc[j]);
        }
      }
      const s0 = Math.fround(acc[0] + acc[4]), s1 = Math.fround(acc[1] + acc[5]);
      const s2 = Math.fround(acc[2] + acc[6]), s3 = Math.fround(acc[3] + acc[7]);
      const v = Math.fround(Math.fround(s0 + s2) + Math.fround(s1 + s3));
      y[r * w.rows + n] = init ? Math.fround(init[r * w.rows + n] + v) : v;
    }
  }
  return y;
}
