// The GEMV entry point with the lane tree as a subgroup butterfly (gemv_reduce.wgsl, GEMV_TREE =
// subgroups; the device has the subgroups feature). A group's SPLIT lanes are SPLIT consecutive
// invocations; when they sit in one subgroup at subgroup lanes tid % subgroup_size (the layout
// every GPU gives a 1-D workgroup, checked here per invocation), step `stride` adds
// subgroupShuffleXor(v, stride) to v: lane l < stride gets p_l + p_{l + stride}, the tree's own
// addition, so lane 0 ends with the tree's bits without a workgroup barrier. If any invocation of
// the workgroup sees another layout or a subgroup smaller than SPLIT, the whole workgroup takes
// the tree in workgroup memory instead: the same bits either way.
enable subgroups;

var<workgroup> subgroupsUnfit: u32;

/** The tree as a butterfly: invocation sgLane is lane `lane` of its group. */
fn gemv_finish_subgroups(n0: u32, m0: u32, lane: u32, sgLane: u32, acc: GemvSums) {
  for (var s = 0u; s < GEMV_SUMS; s++) {
    var v = acc[s / ROWS][s % ROWS];
    for (var stride = SPLIT / 2u; stride > 0u; stride >>= 1u) {
      v += subgroupShuffleXor(v, stride);
    }
    // The group's lane 0 holds the sum; lane s % SPLIT stores it, so the group's stores are spread.
    let sum = subgroupShuffle(v, sgLane - lane);
    if (lane == s % SPLIT) { gemv_store(n0, m0, s, sum); }
  }
}

@compute @workgroup_size(GEMV_THREADS)
fn gemv(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) tid: u32,
  @builtin(subgroup_invocation_id) sgLane: u32,
  @builtin(subgroup_size) sgSize: u32,
) {
  let lane = tid % SPLIT;
  let n0 = gemv_first_row(wid, nwg, tid);
  let m0 = wid.z * ROWS;
  let acc = gemv_accumulate(n0, m0, lane);
  if (SPLIT == 1u) {
    gemv_finish_shared(n0, m0, lane, tid, acc);
    return;
  }
  if (sgLane != tid % sgSize || sgSize < SPLIT) { subgroupsUnfit = 1u; }
  if (workgroupUniformLoad(&subgroupsUnfit) != 0u) {
    gemv_finish_shared(n0, m0, lane, tid, acc);
    return;
  }
  gemv_finish_subgroups(n0, m0, lane, sgLane, acc);
}
