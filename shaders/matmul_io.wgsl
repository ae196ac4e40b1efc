// What every matmul kernel shares (matmul.wgsl, matmul_q8.wgsl): the params, the weight and
// output bindings, and the store that fuses a residual add. The including shader declares its
// own x binding (2).

struct Params {
  m: u32,
  n: u32,
  k4: u32,           // K / 4
  wordsPerRow: u32,  // u32 words per weight row
  accumulate: u32,   // 1: y += x·Wᵀ (fuses a residual add); 0: y = x·Wᵀ
  order: u32,        // rows_llama (matmul.wgsl): 0 per row from rowOrder, 1 all single-row order, 2 all GEMM order
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> W: array<u32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;

fn store_y(m: u32, n: u32, v: f32) {
  let i = m * params.n + n;
  if (params.accumulate != 0u) {
    Y[i] = Y[i] + v;
  } else {
    Y[i] = v;
  }
}
