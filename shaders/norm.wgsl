// RMSNorm of the fast set: out[r] = x[r] * scale * weight, scale = 1 / sqrt(mean(x[r]^2) + eps),
// in plain f32. One workgroup of WG threads per row (256 on a GPU, 8 on a CPU adapter; rows
// folded into 2D as wid.y * nwg.x + wid.x): thread t sums the squares of elements t, t + WG, ...
// in order, then the threads' sums are added in reduce.wgsl's fixed tree. The order depends on
// the row length and the device only, so a row's result is the same in any batch.
// (norm_llama.wgsl is the llama.cpp set's, with llama.cpp's double-precision sum.)
// Params and bindings: norm_io.wgsl.

const WG: u32 = {{WG}}u;
#include "reduce"

#include "norm_io"

fn inv_rms(sumSq: f32) -> f32 {
  return 1.0 / sqrt(sumSq / f32(params.dim) + params.eps);
}

@compute @workgroup_size(WG)
fn rms_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) tid: u32) {
  let row = norm_row(wid, nwg);
  if (row == params.rows) { return; }
  let base = row * params.dim;
  var sumSq = 0.0;
  for (var i = tid; i < params.dim; i += WG) { sumSq += x[base + i] * x[base + i]; }
  let scale = inv_rms(workgroup_sum(sumSq, tid));
  for (var i = tid; i < params.dim; i += WG) { out[base + i] = x[base + i] * scale * weight[i]; }
}

@compute @workgroup_size(WG)
fn rms_norm_add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) tid: u32) {
  let row = norm_row(wid, nwg);
  if (row == params.rows) { return; }
  let base = row * params.dim;
  var sumSq = 0.0;
  for (var i = tid; i < params.dim; i += WG) {
    let h = residual[base + i] + delta[base + i];
    residual[base + i] = h;
    sumSq += h * h;
  }
  let scale = inv_rms(workgroup_sum(sumSq, tid));
  for (var i = tid; i < params.dim; i += WG) { addOut[base + i] = residual[base + i] * scale * addWeight[i]; }
}
