// Greedy sampling: argmax per row of logits f32 [rows, vocab] -> i32 ids [rows].
// Ties go to the lowest index (as llama.cpp's greedy sampler); NaN never wins where the
// implementation keeps NaN semantics; a row with no candidate (all NaN) gives 0.
// One workgroup of WG threads per row (256 on a GPU, 8 on a CPU adapter; rows folded into 2D):
// a strided scan per thread, then a tree reduction of (value, index) pairs in workgroup memory.
// Bindings: 0 Params { rows, vocab }, 1 logits f32 (read), 2 out i32 (read_write).

const WG: u32 = {{WG}}u;
const NO_INDEX: u32 = 0xffffffffu;
const LOWEST: f32 = -3.4028234663852886e38;

struct Params { rows: u32, vocab: u32, _p0: u32, _p1: u32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<i32>;

var<workgroup> bestValue: array<f32, WG>;
var<workgroup> bestIndex: array<u32, WG>;

fn better(value: f32, index: u32, thanValue: f32, thanIndex: u32) -> bool {
  return value > thanValue || (value == thanValue && index < thanIndex);
}

@compute @workgroup_size(WG)
fn argmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_index) tid: u32) {
  let row = wid.y * nwg.x + wid.x;
  if (row >= params.rows) { return; }
  let base = row * params.vocab;
  var value = LOWEST; // with NO_INDEX, any finite value beats it; a row of -inf gives 0 (its lowest index)
  var index = NO_INDEX;
  for (var i = tid; i < params.vocab; i += WG) {
    let v = logits[base + i];
    if (better(v, i, value, index)) {
      value = v;
      index = i;
    }
  }
  bestValue[tid] = value;
  bestIndex[tid] = index;
  workgroupBarrier();
  for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
    if (tid < stride && better(bestValue[tid + stride], bestIndex[tid + stride], bestValue[tid], bestIndex[tid])) {
      bestValue[tid] = bestValue[tid + stride];
      bestIndex[tid] = bestIndex[tid + stride];
    }
    workgroupBarrier();
  }
  if (tid == 0u) { out[row] = select(i32(bestIndex[0]), 0, bestIndex[0] == NO_INDEX); }
}
