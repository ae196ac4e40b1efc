// Rotary position embedding of the llama.cpp set, in place on x f32 [T, heads * headDim].
// Params, bindings and the pairs: rope_io.wgsl (the cos/sin table is built as llama.cpp's CPU
// rope does). x0 * c - x1 * s is computed as llama.cpp's x86 build does (its compiler contracts
// it to fmaf(x0, c, -(x1 * s))), with the fused multiply-add emulated exactly (exact.wgsl).

#include "rope_io"
#include "exact"

@compute @workgroup_size(256)
fn rope(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let p = rope_pair(wid, nwg, lid);
  if (!p.valid) { return; }
  let x0 = x[p.a];
  let x1 = x[p.b];
  let y = fma4(vec4<f32>(x0), vec4<f32>(p.cs, 0.0, 0.0), vec4<f32>(-(x1 * p.cs.y), x1 * p.cs.x, 0.0, 0.0));
  x[p.a] = y.x;
  x[p.b] = y.y;
}
