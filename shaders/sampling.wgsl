// Temperature sampling by the Gumbel-max trick: argmax(logits / T + G), G ~ Gumbel(0, 1) i.i.d.,
// is an exact draw from softmax(logits / T). The noise is a hash of (seed, counter, token id),
// so a sequence's draw depends only on its own seed and step, never on what else is batched.
// After `perturb`, the argmax kernel (sample.wgsl) picks the token; rows with T <= 0 are untouched (greedy).
// Bindings: 0 uniform Params { rows, vocab }, 1 logits f32 [rows, vocab] (read_write),
//           2 rowParams [rows] { temperature f32, seed u32, counter u32, pad }.
struct Params { rows: u32, vocab: u32, _p0: u32, _p1: u32 }
struct RowParams { temperature: f32, seed: u32, counter: u32, _pad: u32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> logits: array<f32>;
@group(0) @binding(2) var<storage, read> rowParams: array<RowParams>;

fn pcg(v: u32) -> u32 {
  let state = v * 747796405u + 2891336453u;
  let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
  return (word >> 22u) ^ word;
}

// Uniform in (0, 1), never 0 or 1, from 24 random bits.
fn uniform01(seed: u32, counter: u32, index: u32) -> f32 {
  let h = pcg(seed ^ pcg(counter ^ pcg(index)));
  return (f32(h >> 8u) + 0.5) / 16777216.0;
}

@compute @workgroup_size(256)
fn perturb(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * nwg.x * 256u + gid.x;
  if (i >= params.rows * params.vocab) { return; }
  let rp = rowParams[i / params.vocab];
  if (rp.temperature <= 0.0) { return; }
  let u = uniform01(rp.seed, rp.counter, i % params.vocab);
  logits[i] = logits[i] / rp.temperature - log(-log(u));
}
