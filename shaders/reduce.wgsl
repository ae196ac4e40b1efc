// Workgroup reductions over f32, shared by one-workgroup-per-row kernels (norm.wgsl,
// sampling.wgsl). The including shader defines `const WG: u32` (threads per workgroup, a power
// of 2); every thread calls with its own value and gets the workgroup's result.
// Plain f32 trees; reduce_ff.wgsl adds float-float sums for the llama.cpp set.

var<workgroup> partialF: array<f32, WG>;

fn workgroup_sum(value: f32, tid: u32) -> f32 {
  partialF[tid] = value;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    if (tid < stride) { partialF[tid] += partialF[tid + stride]; }
    workgroupBarrier();
  }
  return workgroupUniformLoad(&partialF[0]);
}

fn workgroup_max(value: f32, tid: u32) -> f32 {
  partialF[tid] = value;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    if (tid < stride) { partialF[tid] = max(partialF[tid], partialF[tid + stride]); }
    workgroupBarrier();
  }
  return workgroupUniformLoad(&partialF[0]);
}
