// Addressing and decoding of quantized KV pages (KvFormat q8_0 / q4_0; layout in
// src/model/kernels/kv.ts). Functions only, no bindings: included by kv_quant.wgsl and
// attention.wgsl, which define `const KV_QUANT: u32` (bits per quant: 8 or 4; 0 = a float cache).
//
// A page of V values (V = pageSize * numKvHeads * headDim, a multiple of 32) is V * KV_QUANT / 8
// bytes of quants in value order, then the f16 scales of its V / 32 blocks (2 bytes each, block b
// at 2 b), padded to a word. Value v of the page (v = (kvHead * pageSize + slot) * headDim + dim):
//   q8_0  int8 in byte v; value = d * q
//   q4_0  in block b = v / 32 (bytes 16 b ..), j = v % 32: the low nibble of byte j (j < 16) or
//         the high nibble of byte j - 16; value = d * (nibble - 8)
// Pairs (v even) never straddle a half word, so a pair is two bytes of one word.

const KVQ_BLOCK: u32 = 32u;

/** Words of the pair of values (elem, elem + 1) of a cache (elem even), and their shifts. */
struct KvqAddr {
  quantWord: u32,
  quantShift: u32,
  scaleWord: u32,
  scaleShift: u32,
}

fn kvq_page_quant_bytes(pageValues: u32) -> u32 {
  return pageValues * KV_QUANT / 8u;
}

fn kvq_page_bytes(pageValues: u32) -> u32 {
  return kvq_page_quant_bytes(pageValues) + ((pageValues / 16u + 3u) & ~3u);
}

/** elem counts values from the start of the cache; pages hold pageValues values. */
fn kvq_addr(elem: u32, pageValues: u32) -> KvqAddr {
  let page = elem / pageValues;
  let v = elem % pageValues;
  let base = page * kvq_page_bytes(pageValues);
  let j = v % KVQ_BLOCK;
  var quantByte = base + v;
  if (KV_QUANT == 4u) { quantByte = base + (v - j) / 2u + j % 16u; }
  let scaleByte = base + kvq_page_quant_bytes(pageValues) + (v / KVQ_BLOCK) * 2u;
  return KvqAddr(quantByte >> 2u, (quantByte & 3u) * 8u, scaleByte >> 2u, (scaleByte & 3u) * 8u);
}

/** The values (elem, elem + 1) from the words kvq_addr named. */
fn kvq_pair(a: KvqAddr, elem: u32, quantWord: u32, scaleWord: u32) -> vec2<f32> {
  let d = unpack2x16float(scaleWord >> a.scaleShift).x;
  let bytes = quantWord >> a.quantShift;
  if (KV_QUANT == 8u) {
    let q = vec2<i32>(bitcast<i32>(bytes << 24u) >> 24u, bitcast<i32>(bytes << 16u) >> 24u);
    return vec2<f32>(q) * d;
  }
  let nibbles = select(bytes, bytes >> 4u, elem % KVQ_BLOCK >= 16u);
  return (vec2<f32>(f32(nibbles & 15u), f32((nibbles >> 8u) & 15u)) - 8.0) * d;
}

