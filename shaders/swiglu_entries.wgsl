// The SwiGLU entry points of both kernel sets (elementwise.wgsl: fast; swiglu_llama.wgsl:
// llama.cpp's arithmetic). The including shader defines `fn silu(x: f32) -> f32` and includes
// elementwise_io.wgsl.
//
// swiglu        1 gate, 2 up, 3 out:  out[i] = silu(gate[i]) * up[i]  (n elements)
// swiglu_fused  1 gateUp [n / cols, 2 * cols], 2 out [n / cols, cols]: each row of gateUp is
//               [gate (cols) | up (cols)]; out = silu(gate) * up.

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
