// What both RMSNorm kernels share (norm.wgsl, norm_llama.wgsl): params and bindings, one
// workgroup of WG threads per row (256 on a GPU, 8 on a CPU adapter; rows folded into 2D as
// wid.y * nwg.x + wid.x). The including shader defines `const WG: u32` first.
//
// rms_norm      bindings: 0 Params, 1 x f32 [rows, dim], 2 weight f32 [dim], 3 out f32 [rows, dim]
// rms_norm_add  bindings: 0 Params, 1 residual f32 [rows, dim] (read_write), 2 delta f32 [rows, dim],
//               3 weight, 4 out. Fused residual add: residual += delta, then out = rmsnorm(residual).

struct Params { rows: u32, dim: u32, eps: f32, _p0: u32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@group(0) @binding(1) var<storage, read_write> residual: array<f32>;
@group(0) @binding(2) var<storage, read> delta: array<f32>;
@group(0) @binding(3) var<storage, read> addWeight: array<f32>;
@group(0) @binding(4) var<storage, read_write> addOut: array<f32>;

/** The row of workgroup wid, or params.rows past the last row. */
fn norm_row(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return min(wid.y * nwg.x + wid.x, params.rows);
}
