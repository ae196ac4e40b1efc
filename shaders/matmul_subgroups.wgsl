// GEMV with the cross-thread reduction done by subgroupAdd, for devices with the `subgroups`
// feature (matmul.wgsl's gemv is the fallback). Same bindings, defines and grid as matmul.wgsl's
// gemv, with SPLIT = 64: the whole workgroup shares GEMV_COLS weight rows. Each subgroup sums
// its invocations' partials; one invocation per subgroup stores them in a slot it takes with an
// atomic counter (so no assumption on how invocations map to subgroups), and after one barrier
// GEMV_SUMS threads add up the slots.
enable subgroups;
#include "matmul"

const MAX_SUBGROUPS: u32 = GEMV_THREADS / 4u;  // WebGPU subgroups have at least 4 invocations
var<workgroup> subgroupSums: array<f32, MAX_SUBGROUPS * GEMV_SUMS>;
var<workgroup> subgroupCount: atomic<u32>;

@compute @workgroup_size(GEMV_THREADS)
fn gemv_subgroups(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) tid: u32,
) {
  let n0 = (wid.y * nwg.x + wid.x) * GEMV_COLS;
  let acc = gemv_accumulate(n0, tid);
  let leader = subgroupElect();
  var slot = 0u;
  if (leader) {
    slot = atomicAdd(&subgroupCount, 1u);
  }
  for (var s = 0u; s < GEMV_SUMS; s++) {
    let sum = subgroupAdd(acc[s / ROWS][s % ROWS]);
    if (leader) {
      subgroupSums[slot * GEMV_SUMS + s] = sum;
    }
  }
  workgroupBarrier();
  let slots = atomicLoad(&subgroupCount);
  for (var s = tid; s < GEMV_SUMS; s += GEMV_THREADS) {
    var total = 0.0;
    for (var i = 0u; i < slots; i++) {
      total += subgroupSums[i * GEMV_SUMS + s];
    }
    gemv_store(n0, s, total);
  }
}
