// CPU reference of RMSNorm (float64 accumulation).

export function rmsNormReference(x: Float32Array, weight: Float32Array, rows: number, dim: number, eps: number): Float32Array {
  const out = new Float32Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    let sumSq = 0;
    for (let i = 0; i < dim; i++) sumSq += x[r * dim + i] ** 2;
    const scale = 1 / Math.sqrt(sumSq / dim + eps);
    for (let i = 0; i < dim; i++) out[r * dim + i] = x[r * dim + i] * scale * weight[i];
  }
  return out;
}

/** The fused kernel's reference: returns the new residual and the normed rows. */
export function rmsNormAddReference(residual: Float32Array, delta: Float32Array, weight: Float32Array,
  rows: number, dim: number, eps: number): { residual: Float32Array; out: Float32Array } {
  const sum = residual.map((h, i) => h + delta[i]);
  return { residual: sum, out: rmsNormReference(sum, weight, rows, dim, eps) };
}
