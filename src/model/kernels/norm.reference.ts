// CPU reference of RMSNorm, in llama.cpp's arithmetic (ggml_compute_forward_rms_norm_f32): the
// f32 squares summed in double, mean, sqrt and 1 / sqrt rounded to f32, then (x * scale) * weight.

const f32 = Math.fround;

export function rmsNormReference(x: Float32Array, weight: Float32Array, rows: number, dim: number, eps: number): Float32Array {
  const out = new Float32Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    let sumSq = 0;
    for (let i = 0; i < dim; i++) sumSq += f32(x[r * dim + i] * x[r * dim + i]);
    const scale = f32(1 / f32(Math.sqrt(f32(f32(sumSq / dim) + f32(eps)))));
    for (let i = 0; i < dim; i++) out[r * dim + i] = f32(x[r * dim + i] * scale) * weight[i];
  }
  return out;
}

/** The fused kernel's reference: returns the new residual and the normed rows. */
export function rmsNormAddReference(residual: Float32Array, delta: Float32Array, weight: Float32Array,
  rows: number, dim: number, eps: number): { residual: Float32Array; out: Float32Array } {
  const sum = residual.map((h, i) => h + delta[i]);
  return { residual: sum, out: rmsNormReference(sum, weight, rows, dim, eps) };
}
