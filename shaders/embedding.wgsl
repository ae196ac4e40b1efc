// Embedding lookup with dequantization: out[t, :] = dequant(W row tokenIds[t]).
// Bindings: 0 uniform Params, 1 W: array<u32> (weight rows in the dequant.wgsl GPU layout of
// type {{WTYPE}}), 2 tokenIds: array<i32> [count], 3 out: array<vec4<f32>> [count, cols / 4].
// A token id outside [0, rows) gives a row of zeros.
// One thread per output vec4; 2D grid of 64-thread workgroups, linear index y * nwg.x * 64 + x.
#include "dequant"

struct Params {
  count: u32,        // tokens
  cols4: u32,        // row length / 4
  rows: u32,         // rows of W (vocabulary size)
  wordsPerRow: u32,  // u32 words per row of W
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> W: array<u32>;
@group(0) @binding(2) var<storage, read> tokenIds: array<i32>;
@group(0) @binding(3) var<storage, read_write> out: array<vec4<f32>>;

const VEC4_PER_BLOCK: u32 = BLOCK_ELEMS_{{WTYPE}} / 4u;

@compute @workgroup_size(64)
fn embed(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * nwg.x * 64u + gid.x;
  if (i >= params.count * params.cols4) { return; }
  let t = i / params.cols4;
  let c4 = i % params.cols4;
  let id = tokenIds[t];
  var v = vec4<f32>(0.0);
  if (id >= 0 && u32(id) < params.rows) {
    let bw = u32(id) * params.wordsPerRow + (c4 / VEC4_PER_BLOCK) * BLOCK_WORDS_{{WTYPE}};
    v = dq4_{{WTYPE}}(bw, c4 % VEC4_PER_BLOCK);
  }
  out[i] = v;
}
