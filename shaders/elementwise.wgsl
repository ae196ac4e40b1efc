// Elementwise kernels over f32 arrays. One thread per output element: 256-thread workgroups
// folded into 2D, element = (wid.y * nwg.x + wid.x) * 256 + lid. Params { n, cols, factor }.
//
// add           1 a, 2 b, 3 out:                    out[i] = a[i] + b[i]            (n elements)
// add_inplace   1 a (read_write), 2 b:              a[i] += b[i]                    (n elements)
// scale         1 a, 2 out:                         out[i] = a[i] * factor          (n elements)
// scale_inplace 1 a (read_write):                   a[i] *= factor                  (n elements)
// swiglu        1 gate, 2 up, 3 out:                out[i] = silu(gate[i]) * up[i]  (n elements)
// swiglu_fused  1 gateUp [n / cols, 2 * cols], 2 out [n / cols, cols]: each row of gateUp is
//               [gate (cols) | up (cols)] (one matmul against concatenated weights); out = silu(gate) * up.
// gather_rows   1 x [*, cols], 2 rows i32 [n / cols], 3 out [n / cols, cols]: out[i] = x[rows[i]].
//
// silu here is the fast set's, plain f32: x / (1 + exp(-x)). swiglu_llama.wgsl has the llama.cpp
// set's swiglu and swiglu_fused (llama.cpp's ggml_v_silu arithmetic).

#include "elementwise_io"

@group(0) @binding(1) var<storage, read_write> aInPlace: array<f32>;
@group(0) @binding(2) var<storage, read> rowIds: array<i32>;

fn silu(x: f32) -> f32 {
  return x / (1.0 + exp(-x));  // exp(-x) = inf (x < -88.7) gives -0 there
}

@compute @workgroup_size(256)
fn add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = element(wid, nwg, lid);
  if (i < params.n) { out[i] = a[i] + b[i]; }
}

@compute @workgroup_size(256)
fn add_inplace(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = element(wid, nwg, lid);
  if (i < params.n) { aInPlace[i] += b[i]; }
}

@compute @workgroup_size(256)
fn scale(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = element(wid, nwg, lid);
  if (i < params.n) { out2[i] = a[i] * params.factor; }
}

@compute @workgroup_size(256)
fn scale_inplace(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = element(wid, nwg, lid);
  if (i < params.n) { aInPlace[i] *= params.factor; }
}

#include "swiglu_entries"

@compute @workgroup_size(256)
fn gather_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = element(wid, nwg, lid);
  if (i >= params.n) { return; }
  let row = u32(rowIds[i / params.cols]);
  out[i] = a[row * params.cols + i % params.cols];
}
