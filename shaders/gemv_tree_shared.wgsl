// The GEMV entry point with the lane tree in workgroup memory (gemv_reduce.wgsl, GEMV_TREE = shared).

@compute @workgroup_size(GEMV_THREADS)
fn gemv(
  @builtin(workgroup_id) wid: vec3<u32>,
  @builtin(num_workgroups) nwg: vec3<u32>,
  @builtin(local_invocation_index) tid: u32,
) {
  let lane = tid % SPLIT;
  let n0 = gemv_first_row(wid, nwg, tid);
  let m0 = wid.z * ROWS;
  gemv_finish_shared(n0, m0, lane, tid, gemv_accumulate(n0, m0, lane));
}
