// Probes of the device's float arithmetic, run once when a runtime starts (src/gpu/arithmetic.ts).
// Binding 0 io: array<f32>: a, b, c in 0..2; out: fma(a, b, c) in 3, a * b + c in 4 (whether
// the compiler contracts it). Inputs come from a buffer so nothing folds at compile time.

@group(0) @binding(0) var<storage, read_write> io: array<f32>;

@compute @workgroup_size(1)
fn probe_fma() {
  io[3] = fma(io[0], io[1], io[2]);
  io[4] = io[0] * io[1] + io[2];
}

// compare_fma (tests): io holds n triples (a, b, c) then 2 n results: per triple, fma4 (exact.wgsl;
// emulated unless FUSED_FMA) and the builtin fma(). n = arrayLength(io) / 5.
#include "exact"

@compute @workgroup_size(64)
fn compare_fma(@builtin(global_invocation_id) gid: vec3<u32>) {
  let n = arrayLength(&io) / 5u;
  let i = gid.x;
  if (i >= n) { return; }
  let a = io[3u * i];
  let b = io[3u * i + 1u];
  let c = io[3u * i + 2u];
  io[3u * n + 2u * i] = fma4(vec4<f32>(a), vec4<f32>(b), vec4<f32>(c)).x;
  io[3u * n + 2u * i + 1u] = fma(a, b, c);
}
