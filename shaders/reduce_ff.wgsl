// Workgroup sum of float-floats (exact.wgsl ff_add), for the llama.cpp set's RMSNorm
// (norm_llama.wgsl), which sums squares as llama.cpp does in double. The including shader defines
// `const WG: u32` and includes reduce.wgsl.

#include "exact"

var<workgroup> partialFF: array<vec2<f32>, WG>;

fn workgroup_sum_ff(value: vec2<f32>, tid: u32) -> vec2<f32> {
  partialFF[tid] = value;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    if (tid < stride) { partialFF[tid] = ff_add(partialFF[tid], partialFF[tid + stride]); }
    workgroupBarrier();
  }
  return workgroupUniformLoad(&partialFF[0]);
}
