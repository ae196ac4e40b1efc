// What every matmul kernel shares (matmul.wgsl, matmul_q8.wgsl): the params, the weight and
// output bindings, and the store that fuses a residual add. The including shader declares its
// own x binding (2).

struct Params {
  m: u32,
  n: u32,
  k4: u32,           // K / 4
  wordsPerRow: u32,  // u32 words per weight row
  accumulate: u32,   // 1: y += x·Wᵀ (fuses a residual add); 0: y = x·Wᵀ
  places: u32,       // row_place(): 0 per row from rowPlaces, 1 every row alone, 2 the rows as one sequence
  _pad1: u32,
  _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> W: array<u32>;
@group(0) @binding(3) var<storage, read_write> Y: array<f32>;

// The kernels that reproduce llama.cpp's per-call choice of kernel (matmul.wgsl rows_llama,
// matmul_qk.wgsl) ask where row m would sit in a llama.cpp batch: (index among its sequence's new
// tokens, their count), from binding 4 (u32 pairs; any read-only buffer when params.places != 0).
@group(0) @binding(4) var<storage, read> rowPlaces: array<vec2<u32>>;

fn row_place(m: u32) -> vec2<u32> {
  if (params.places == 1u) { return vec2<u32>(0u, 1u); }
  if (params.places == 2u) { return vec2<u32>(m, params.m); }
  return rowPlaces[m];
}

fn store_y(m: u32, n: u32, v: f32) {
  let i = m * params.n + n;
  if (params.accumulate != 0u) {
    Y[i] = Y[i] + v;
  } else {
    Y[i] = v;
  }
}
