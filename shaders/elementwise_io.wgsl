// What the elementwise kernels share (elementwise.wgsl, swiglu_llama.wgsl): params, the common
// bindings, and the element index of a thread (256-thread workgroups folded into 2D).

struct Params { n: u32, cols: u32, factor: f32, _p0: u32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read_write> out2: array<f32>;

fn element(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
  return (wid.y * nwg.x + wid.x) * 256u + lid;
}
