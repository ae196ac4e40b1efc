// SwiGLU of the llama.cpp set: silu as llama.cpp's ggml_v_silu (x86 AVX2 + FMA) computes it,
// x / (1 + ggml_v_expf(-x)) with the division correctly rounded (exact.wgsl). One thread per
// output element: 256-thread workgroups folded into 2D. Params { n, cols, factor } as elementwise.wgsl.
//
// swiglu        1 gate, 2 up, 3 out:  out[i] = silu(gate[i]) * up[i]  (n elements)
// swiglu_fused  1 gateUp [n / cols, 2 * cols], 2 out [n / cols, cols]: each row of gateUp is
//               [gate (cols) | up (cols)]; out = silu(gate) * up.

#include "exact"

struct Params { n: u32, cols: u32, factor: f32, _p0: u32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read_write> out2: array<f32>;

fn element(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return (wid.y * nwg.x + wid.x) * 256u + lid;
}

fn silu(x: f32) -> f32 {
  let d = 1.0 + ggml_expf4(vec4<f32>(-x)).x;
  if (x == 0.0) { return 0.0; }
  return sign(x) * div_rn(abs(x), d);  // d = inf (x < -88.7) gives 0 there
}

@compute @workgroup_size(256)
fn swiglu(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = element(wid, nwg, lid);
  if (i < params.n) { out[i] = silu(a[i]) * b[i]; }
}

@compute @workgroup_size(256)
fn swiglu_fused(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = element(wid, nwg, lid);
  if (i >= params.n) { return; }
  let gate = (i / params.cols) * 2u * params.cols + i % params.cols;
  out2[i] = silu(a[gate]) * a[gate + params.cols];
}
