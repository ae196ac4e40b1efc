// CPU references of the elementwise kernels. SiLU is llama.cpp's (ggml_v_silu on x86 AVX2 with
// FMA): x / (1 + ggml_v_expf(-x)) in f32.
import { fmaF32 } from './matmul.reference.js';

const f32 = Math.fround;
const word = new Float32Array(1);
const wordBits = new Uint32Array(word.buffer);

function bitsOf(x: number): number {
  word[0] = x;
  return wordBits[0];
}

function fromBits(u: number): number {
  wordBits[0] = u >>> 0;
  return word[0];
}

/** ggml_v_expf (ggml-cpu/vec.h, __m256 version), operation for operation; see ggml_expf4 in exact.wgsl. */
export function ggmlExpf(x: number): number {
  const shift = 12582912; // 0x1.8p23
  const z = fmaF32(x, 1.4426950216293335, shift);
  const n = f32(z - shift);
  const b = fmaF32(-n, 1.428606765330187e-6, fmaF32(-n, 0.693145751953125, x));
  const e = (bitsOf(z) << 23) >>> 0;
  const k = fromBits(e + bitsOf(1));
  const u = f32(b * b);
  const j = fmaF32(fmaF32(fmaF32(0.008247390389442444, b, 0.04189976677298546), u, fmaF32(0.16668395698070526, b, 0.4999912679195404)),
    u, f32(0.9999994039535522 * b));
  if (Math.abs(n) <= 126) return fmaF32(k, j, k);
  const g = n <= 0 ? 0x82000000 : 0;
  const s1 = fromBits(g + 0x7f000000);
  if (Math.abs(n) > 192) return f32(s1 * s1);
  const s2 = fromBits(e - g);
  return f32(fmaF32(s2, j, s2) * s1);
}

export function silu(x: number): number {
  return f32(x / f32(1 + ggmlExpf(-x)));
}

export function swigluReference(gate: Float32Array, up: Float32Array): Float32Array {
  return gate.map((g, i) => silu(g) * up[i]);
}

/** gateUp rows are [gate (ffnDim) | up (ffnDim)]. */
export function swigluFusedReference(gateUp: Float32Array, rows: number, ffnDim: number): Float32Array {
  const out = new Float32Array(rows * ffnDim);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < ffnDim; i++) out[r * ffnDim + i] = silu(gateUp[r * 2 * ffnDim + i]) * gateUp[r * 2 * ffnDim + ffnDim + i];
  }
  return out;
}

export function addReference(a: Float32Array, b: Float32Array): Float32Array {
  return a.map((x, i) => x + b[i]);
}

export function scaleReference(x: Float32Array, factor: number): Float32Array {
  return x.map((v) => v * factor);
}

export function gatherRowsReference(x: Float32Array, rowIds: Int32Array, dim: number): Float32Array {
  const out = new Float32Array(rowIds.length * dim);
  rowIds.forEach((r, i) => out.set(x.subarray(r * dim, (r + 1) * dim), i * dim));
  return out;
}
