// Exact integer sums of Q4_K / Q6_K weight blocks against Q8_K activation blocks, shared by the
// llama.cpp set's rows_qk (matmul_qk.wgsl) and the fast set's GEMV (matmul_qk_gemv.wgsl).
// The including shader declares W: array<u32> (dequant.wgsl layout) and defines
// `fn xq_word(i: u32) -> u32`, word i of the activations (quantize_act.wgsl quant_q8_k layout, 81 words per 256-block: f32 d, 64 words of packed int8
// quants, 16 i32 bsums of 16 elements each). Integer sums are exact in i32 (|sum| < 2^31 for
// any block), so their order is free; only the float accumulation over blocks has an order.

fn scale_min_q4_k(bw: u32, sb: u32) -> vec2<i32> {
  return vec2<i32>(dq_q4_k_scale_min(bw, sb));
}

/** (isum, imin) over sub-blocks sb0 .. sb0 + count - 1 of the Q4_K block at bw and the Q8_K block at xb. */
fn qk_sums_q4_k(bw: u32, xb: u32, sb0: u32, count: u32) -> vec2<i32> {
  var isum = 0;
  var imin = 0;
  for (var sb = sb0; sb < sb0 + count; sb++) {
    let sm = scale_min_q4_k(bw, sb);
    let chunk = sb >> 1u;
    let high = sb & 1u;
    var s = 0;
    for (var j = 0u; j < 8u; j++) {
      let q4 = (W[bw + 4u + 8u * chunk + j] >> (4u * high)) & 0x0f0f0f0fu;
      s += dot4I8Packed(q4, xq_word(xb + 1u + 8u * sb + j));
    }
    isum += sm.x * s;
    imin += sm.y * (bitcast<i32>(xq_word(xb + 65u + 2u * sb)) + bitcast<i32>(xq_word(xb + 66u + 2u * sb)));
  }
  return vec2<i32>(isum, imin);
}

/** The int8 scale of 16-element group g of the Q6_K block at bw. */
fn scale_q6_k(bw: u32, g: u32) -> i32 {
  return bitcast<i32>(W[bw + 48u + (g >> 2u)] << (24u - 8u * (g & 3u))) >> 24u;
}

/** Packed unsigned 6-bit quants (0..63) of elements 4 e4 .. 4 e4 + 3 of the Q6_K block at bw. */
fn q6_k_quants(bw: u32, e4: u32) -> u32 {
  let e = 4u * e4;
  let part = e >> 7u;
  let quarter = (e >> 5u) & 3u;
  let l = e & 31u;
  let ql = (W[bw + 16u * part + 8u * (quarter & 1u) + (l >> 2u)] >> (4u * (quarter >> 1u))) & 0x0f0f0f0fu;
  let qh = (W[bw + 32u + 8u * part + (l >> 2u)] >> (2u * quarter)) & 0x03030303u;
  return ql | (qh << 4u);
}

/** The 32 * scale-weighted bsums of groups 2 lane and 2 lane + 1 (the -32 offset of Q6_K's quants). */
fn q6_k_offset(bw: u32, xb: u32, lane: u32) -> i32 {
  let g = 2u * lane;
  return 32 * (scale_q6_k(bw, g) * bitcast<i32>(xq_word(xb + 65u + g)) + scale_q6_k(bw, g + 1u) * bitcast<i32>(xq_word(xb + 66u + g)));
}

/** The 8 lane sums of one Q6_K block: lane L takes elements 32 c + 4 L .. +3 of every 32-chunk c. */
fn qk_lanes_q6_k(bw: u32, xb: u32) -> array<i32, 8> {
  var lanes: array<i32, 8>;
  for (var e4 = 0u; e4 < 64u; e4++) {
    lanes[e4 & 7u] += scale_q6_k(bw, e4 >> 2u) * dot4I8Packed(q6_k_quants(bw, e4), xq_word(xb + 1u + e4));
  }
  for (var lane = 0u; lane < 8u; lane++) {
    lanes[lane] -= q6_k_offset(bw, xb, lane);
  }
  return lanes;
}
