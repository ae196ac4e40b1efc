// RMSNorm of the llama.cpp set: out[r] = x[r] * scale * weight, scale = 1 / sqrt(mean(x[r]^2) + eps), one workgroup
// of WG threads per row (256 on a GPU, 8 on a CPU adapter; rows folded into 2D as
// wid.y * nwg.x + wid.x), sum of squares by a tree reduction in workgroup memory (reduce.wgsl).
// As llama.cpp's ggml_compute_forward_rms_norm_f32: the f32 squares summed in double (float-float
// here, so the order does not matter), mean, sqrt and 1 / sqrt each rounded to f32 once, then
// (x * scale) * weight.
// Params and bindings: norm_io.wgsl.

const WG: u32 = {{WG}}u;
#include "reduce"
#include "reduce_ff"

#include "norm_io"

fn inv_rms(sumSq: vec2<f32>) -> f32 {
  return div_rn(1.0, sqrt_rn(ff_div_rn(sumSq, f32(params.dim)) + params.eps));
}

@compute @workgroup_size(WG)
fn rms_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) tid: u32) {
  let row = norm_row(wid, nwg);
  if (row == params.rows) { return; }
  let base = row * params.dim;
  var sumSq = vec2<f32>(0.0);
  for (var i = tid; i < params.dim; i += WG) { sumSq = ff_add(sumSq, vec2<f32>(x[base + i] * x[base + i], 0.0)); }
  let scale = inv_rms(workgroup_sum_ff(sumSq, tid));
  for (var i = tid; i < params.dim; i += WG) { out[base + i] = x[base + i] * scale * weight[i]; }
}

@compute @workgroup_size(WG)
fn rms_norm_add(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_index) tid: u32) {
  let row = norm_row(wid, nwg);
  if (row == params.rows) { return; }
  let base = row * params.dim;
  var sumSq = vec2<f32>(0.0);
  for (var i = tid; i < params.dim; i += WG) {
    let h = residual[base + i] + delta[base + i];
    residual[base + i] = h;
    sumSq = ff_add(sumSq, vec2<f32>(h * h, 0.0));
  }
  let scale = inv_rms(workgroup_sum_ff(sumSq, tid));
  for (var i = tid; i < params.dim; i += WG) { addOut[base + i] = residual[base + i] * scale * addWeight[i]; }
}
