// The KV write for quantized pages (KvFormat q8_0 / q4_0, layout in kv_q_page.wgsl): rows of K
// and V quantized block by block (32 values of one token and kv head) into their cache slots.
//   q8_0  as llama.cpp's quantize_row_q8_0 (x86 AVX2): amax = max |x|, d = f16(amax / 127),
//         q = round-half-even(x * (127 / amax))
//   q4_0  as quantize_row_q4_0_ref: max = the first x of largest |x|, d = max / -8 (stored as f16),
//         q = min(15, floor(x * (1 / d) + 8.5))
// Divisions are correctly rounded (exact.wgsl div_rn), so the bytes are those of the CPU reference
// (kv.reference.ts) and depend only on the token's own row (batch invariance).
//
// Bindings (as kv.wgsl write_kv): 0 Params, 1 k f32 [T, numKvHeads * headDim], 2 v f32, 3 slotMapping
// i32 [T] (-1 skips the token), 4 kCache, 5 vCache (u32 words, atomic: the f16 scales of two
// blocks can share a word, written by different threads with atomicAnd/atomicOr on their half).
// One thread per block: 64-thread workgroups over T * numKvHeads * headDim / 32 blocks, folded in 2D.

const KV_QUANT: u32 = {{KV_QUANT}}u;

#include "exact"
#include "kv_q_page"

struct Params { tokens: u32, numKvHeads: u32, headDim: u32, pageSize: u32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read> slotMapping: array<i32>;
@group(0) @binding(4) var<storage, read_write> kCache: array<atomic<u32>>;
@group(0) @binding(5) var<storage, read_write> vCache: array<atomic<u32>>;

/** One quantized block: the f16 bits of d and KV_QUANT words of quants (8 for q8_0, 4 for q4_0). */
struct QBlock {
  scaleBits: u32,
  words: array<u32, 8>,
}

fn f16_bits(d: f32) -> u32 {
  return pack2x16float(vec2<f32>(d, 0.0)) & 0xffffu;
}

fn quantize_q8_0(x: array<f32, 32>) -> QBlock {
  var amax = 0.0;
  for (var i = 0u; i < 32u; i++) { amax = max(amax, abs(x[i])); }
  var b: QBlock;
  var id = 0.0;
  var d = 0.0;
  if (amax != 0.0) {
    d = f16_grid(div_rn(amax, 127.0));
    id = div_rn(127.0, amax);
  }
  b.scaleBits = f16_bits(d);
  for (var w = 0u; w < 8u; w++) {
    var word = 0u;
    for (var i = 0u; i < 4u; i++) {
      let q = i32(clamp(round(x[4u * w + i] * id), -128.0, 127.0));
      word |= (bitcast<u32>(q) & 0xffu) << (8u * i);
    }
    b.words[w] = word;
  }
  return b;
}

fn quantize_q4_0(x: array<f32, 32>) -> QBlock {
  var amax = 0.0;
  var mx = 0.0;
  for (var i = 0u; i < 32u; i++) {
    if (amax < abs(x[i])) {
      amax = abs(x[i]);
      mx = x[i];
    }
  }
  let d = mx * -0.125;
  var id = 0.0;
  if (d != 0.0) { id = sign(d) * div_rn(1.0, abs(d)); }
  var b: QBlock;
  b.scaleBits = f16_bits(f16_grid(d));
  for (var w = 0u; w < 4u; w++) {
    var word = 0u;
    for (var i = 0u; i < 4u; i++) {
      let j = 4u * w + i;
      let lo = min(15u, u32(floor(x[j] * id + 8.5)));
      let hi = min(15u, u32(floor(x[j + 16u] * id + 8.5)));
      word |= (lo | (hi << 4u)) << (8u * i);
    }
    b.words[w] = word;
  }
  return b;
}

fn quantize_block(x: array<f32, 32>) -> QBlock {
  if (KV_QUANT == 8u) { return quantize_q8_0(x); }
  return quantize_q4_0(x);
}

@compute @workgroup_size(64)
fn write_kv_quant(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
  let block = (wid.y * nwg.x + wid.x) * 64u + lid;
  let rowValues = params.numKvHeads * params.headDim;
  let rowBlocks = rowValues / KVQ_BLOCK;
  let token = block / rowBlocks;
  if (token >= params.tokens) { return; }
  let slot = slotMapping[token];
  if (slot < 0) { return; }
  let inRow = (block % rowBlocks) * KVQ_BLOCK;
  let head = inRow / params.headDim;
  let dim = inRow % params.headDim;
  let page = u32(slot) / params.pageSize;
  let offset = u32(slot) % params.pageSize;
  let pageValues = params.pageSize * rowValues;
  let elem = page * pageValues + (head * params.pageSize + offset) * params.headDim + dim;
  let a = kvq_addr(elem, pageValues);
  let src = token * rowValues + inRow;
  var xk: array<f32, 32>;
  var xv: array<f32, 32>;
  for (var i = 0u; i < 32u; i++) {
    xk[i] = k[src + i];
    xv[i] = v[src + i];
  }
  let bk = quantize_block(xk);
  let bv = quantize_block(xv);
  for (var w = 0u; w < KV_QUANT; w++) {
    atomicStore(&kCache[a.quantWord + w], bk.words[w]);
    atomicStore(&vCache[a.quantWord + w], bv.words[w]);
  }
  let keep = ~(0xffffu << a.scaleShift);
  atomicAnd(&kCache[a.scaleWord], keep);
  atomicOr(&kCache[a.scaleWord], bk.scaleBits << a.scaleShift);
  atomicAnd(&vCache[a.scaleWord], keep);
  atomicOr(&vCache[a.scaleWord], bv.scaleBits << a.scaleShift);
}
