// CPU references of the elementwise kernels.

export function silu(x: number): number {
  return x / (1 + Math.exp(-x));
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
