// KV cache write through the slot mapping.
//
// Layout of one layer's K buffer (and V buffer), as u32 words: pages of pageSize tokens, each page
// [numKvHeads][pageSize][HEAD_DIM], i.e. element (page, kvHead, slot, dim) at
//   ((page * numKvHeads + kvHead) * pageSize + slot) * headDim + dim
// so decode reads of one kv head walk contiguous [pageSize, headDim] blocks.
// Format f32: one f32 bit pattern per word. f16 (KV_F16): two halves per word, dims 2i (low half)
// and 2i+1 (high half), written with pack2x16float.
//
// Bindings: 0 Params, 1 k f32 [T, numKvHeads * headDim], 2 v f32 (same shape), 3 slotMapping i32 [T]
// (page * pageSize + offset; -1 = skip the token), 4 kCache u32 (read_write), 5 vCache u32 (read_write).
// One thread per cache word: grid of 256-thread workgroups over T * numKvHeads * headDim / WORD_VALUES
// words, folded into 2D as (wid.y * nwg.x + wid.x).
//
// copy_page (copy-on-write): no params; bindings 0 job u32 [4] (pageWords, srcPage, dstPage,
// unused: one 256-byte record of a job buffer, bound as a range, so the step's uniform slots do
// not move), 1 kCache u32 (read_write), 2 vCache u32 (read_write). Copies page srcPage to page
// dstPage in both (a page is pageWords contiguous words). One thread per word: grid of
// 256-thread workgroups over pageWords, folded the same way.

const KV_F16: bool = {{KV_F16}};
const WORD_VALUES: u32 = select(1u, 2u, KV_F16);

struct Params { tokens: u32, numKvHeads: u32, headDim: u32, pageSize: u32 }

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read> slotMapping: array<i32>;
@group(0) @binding(4) var<storage, read_write> kCache: array<u32>;
@group(0) @binding(5) var<storage, read_write> vCache: array<u32>;

fn encode(x: f32, y: f32) -> u32 {
  if (KV_F16) { return pack2x16float(vec2<f32>(x, y)); }
  return bitcast<u32>(x);
}

@compute @workgroup_size(256)
fn write_kv(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
  let word = (wid.y * nwg.x + wid.x) * 256u + lid;
  let rowValues = params.numKvHeads * params.headDim;
  let rowWords = rowValues / WORD_VALUES;
  let token = word / rowWords;
  if (token >= params.tokens) { return; }
  let slot = slotMapping[token];
  if (slot < 0) { return; }
  let inRow = (word % rowWords) * WORD_VALUES;
  let head = inRow / params.headDim;
  let dim = inRow % params.headDim;
  let page = u32(slot) / params.pageSize;
  let offset = u32(slot) % params.pageSize;
  let dst = ((page * params.numKvHeads + head) * params.pageSize + offset) * params.headDim + dim;
  let src = token * rowValues + inRow;
  // For f32 the second value is unused; reading it stays inside the row (robust either way).
  let second = select(src, src + 1u, KV_F16);
  kCache[dst / WORD_VALUES] = encode(k[src], k[second]);
  vCache[dst / WORD_VALUES] = encode(v[src], v[second]);
}

@group(0) @binding(0) var<storage, read> copyJob: array<u32, 4>;
@group(0) @binding(1) var<storage, read_write> kPages: array<u32>;
@group(0) @binding(2) var<storage, read_write> vPages: array<u32>;

@compute @workgroup_size(256)
fn copy_page(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_index) lid: u32) {
  let word = (wid.y * nwg.x + wid.x) * 256u + lid;
  let pageWords = copyJob[0];
  if (word >= pageWords) { return; }
  let src = copyJob[1] * pageWords + word;
  let dst = copyJob[2] * pageWords + word;
  kPages[dst] = kPages[src];
  vPages[dst] = vPages[src];
}
