// Rotary position embedding of the fast set, in place on x f32 [T, heads * headDim], in plain
// f32: (x0, x1) -> (x0 c - x1 s, x0 s + x1 c). Params, bindings and the pairs: rope_io.wgsl.
// (rope_llama.wgsl is the llama.cpp set's, with its fused multiply-add emulated.)

#include "rope_io"

@compute @workgroup_size(256)
fn rope(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
  let p = rope_pair(wid, nwg, lid);
  if (!p.valid) { return; }
  let x0 = x[p.a];
  let x1 = x[p.b];
  x[p.a] = x0 * p.cs.x - x1 * p.cs.y;
  x[p.b] = x0 * p.cs.y + x1 * p.cs.x;
}
