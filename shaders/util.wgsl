// Small utility kernels: fill and copy (the copy is the bandwidth baseline of bench/kernels).
// Bindings: 0 uniform Params { n: u32 (elements of 4 bytes), value: u32 }, 1 src (read), 2 dst (read_write).
struct Params { n: u32, value: u32, _p0: u32, _p1: u32 }
@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<u32>>;

// Copies n vec4 words; launched as 2D grid of 256-thread workgroups (x * 65535 + y).
@compute @workgroup_size(256)
fn copy_vec4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * nwg.x * 256u + gid.x;
  if (i < params.n) { dst[i] = src[i]; }
}
