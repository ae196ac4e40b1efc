// KV pages out of a cache as plain f32 rows: the first half of moving pages between formats
// (the context store compresses pages to q8_0 and restores them to the live format; the second
// half is the KV write of kv.wgsl / kv_quant.wgsl, from these rows).
//
// Cache formats as attention.wgsl reads them: f32, f16 (KV_F16), q8_0 / q4_0 (KV_QUANT 8 / 4,
// kv_q_page.wgsl).
// Bindings: 0 Params, 1 cache u32 (one layer's K or V buffer), 2 pages u32 [pageCount] (page ids),
// 3 rows f32 [pageCount * pageSize, numKvHeads * headDim]: row i * pageSize + slot holds slot
// `slot` of pages[i], heads side by side, as the KV write takes them.
// One thread per unit (32 values of one (token, kv head) for quantized formats, which must be
// decoded a block at a time; 2 values otherwise): 64-thread workgroups folded in 2D.

const KV_F16: bool = {{KV_F16}};
const KV_QUANT: u32 = {{KV_QUANT}}u;
const UNIT: u32 = select(2u, 32u, KV_QUANT != 0u);

#include "kv_q_page"

struct Params { numKvHeads: u32, headDim: u32, pageSize: u32, pageCount: u32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> cache: array<u32>;
@group(0) @binding(2) var<storage, read> pages: array<u32>;
@group(0) @binding(3) var<storage, read_write> rows: array<f32>;

fn pair(elem: u32, pageValues: u32) -> vec2<f32> {
  if (KV_QUANT != 0u) {
    let a = kvq_addr(elem, pageValues);
    return kvq_pair(a, elem, cache[a.quantWord], cache[a.scaleWord]);
  }
  if (KV_F16) { return unpack2x16float(cache[elem >> 1u]); }
  return vec2<f32>(bitcast<f32>(cache[elem]), bitcast<f32>(cache[elem + 1u]));
}

@compute @workgroup_size(64)
fn read_pages(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
  let unit = (wid.y * nwg.x + wid.x) * 64u + lid;
  let rowValues = params.numKvHeads * params.headDim;
  let row = unit / (rowValues / UNIT);
  if (row >= params.pageCount * params.pageSize) { return; }
  let inRow = (unit % (rowValues / UNIT)) * UNIT;
  let head = inRow / params.headDim;
  let dim = inRow % params.headDim;
  let slot = row % params.pageSize;
  let pageValues = params.pageSize * rowValues;
  let elem = pages[row / params.pageSize] * pageValues + (head * params.pageSize + slot) * params.headDim + dim;
  var x: array<f32, 32>;
  for (var i = 0u; i < UNIT; i += 2u) {
    let p = pair(elem + i, pageValues);
    x[i] = p.x;
    x[i + 1u] = p.y;
  }
  for (var i = 0u; i < UNIT; i++) { rows[row * rowValues + inRow + i] = x[i]; }
}
