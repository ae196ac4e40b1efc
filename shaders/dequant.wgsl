// Dequantization of GGUF weight blocks, one set of functions per weight type (suffix = type).
// The including shader declares the weight buffer:  var<storage, read> W: array<u32>
// holding blocks in the GPU layout of src/model/quant.ts (repackForGpu):
//   f32   4-element block,   4 words: the floats
//   f16   4-element block,   2 words: halves, low half first
//   bf16  4-element block,   2 words: bfloat16s, low half first
//   q8_0  32-element block,  9 words: word 0 = f16 d (low half), words 1..8 = 32 int8 quants
//   q4_0  32-element block,  5 words: word 0 = f16 d (low half), words 1..4 = 16 bytes, byte j holds
//                                     element j (low nibble) and j+16 (high nibble), value (q-8)*d
//   q4_k  256-element block, 36 words: word 0 = f16 d | f16 dmin << 16, words 1..3 = 12 bytes of
//                                     packed 6-bit scales/mins, words 4..35 = 128 bytes of nibbles
//   q6_k  256-element block, 53 words: words 0..31 ql (low 4 bits), 32..47 qh (high 2 bits),
//                                     48..51 int8 scales (one per 16 elements), 52 = f16 d (low half)
// dq4_<type>(blockWord, i4) returns elements 4*i4 .. 4*i4+3 of the block starting at word
// blockWord (i4 < BLOCK_ELEMS_<type> / 4). Kernels pick a type with BLOCK_ELEMS_{{WTYPE}} etc.

const BLOCK_ELEMS_f32: u32 = 4u;
const BLOCK_WORDS_f32: u32 = 4u;
const BLOCK_ELEMS_f16: u32 = 4u;
const BLOCK_WORDS_f16: u32 = 2u;
const BLOCK_ELEMS_bf16: u32 = 4u;
const BLOCK_WORDS_bf16: u32 = 2u;
const BLOCK_ELEMS_q8_0: u32 = 32u;
const BLOCK_WORDS_q8_0: u32 = 9u;
const BLOCK_ELEMS_q4_0: u32 = 32u;
const BLOCK_WORDS_q4_0: u32 = 5u;
const BLOCK_ELEMS_q4_k: u32 = 256u;
const BLOCK_WORDS_q4_k: u32 = 36u;
const BLOCK_ELEMS_q6_k: u32 = 256u;
const BLOCK_WORDS_q6_k: u32 = 53u;

const BYTE_SHIFTS = vec4<u32>(0u, 8u, 16u, 24u);

fn dq_byte(word: u32, index: u32) -> u32 {
  return (word >> (8u * (index & 3u))) & 0xffu;
}

fn dq_i8x4(word: u32) -> vec4<f32> {
  // Shift each byte to the top, then arithmetic-shift back down to sign-extend it.
  let w = vec4<u32>(word) << (vec4<u32>(24u) - BYTE_SHIFTS);
  return vec4<f32>(bitcast<vec4<i32>>(w) >> vec4<u32>(24u));
}

fn dq_nibbles(word: u32, high: u32) -> vec4<f32> {
  return vec4<f32>((vec4<u32>(word) >> (BYTE_SHIFTS + vec4<u32>(4u * high))) & vec4<u32>(0xfu));
}

fn dq4_f32(bw: u32, i4: u32) -> vec4<f32> {
  return bitcast<vec4<f32>>(vec4<u32>(W[bw], W[bw + 1u], W[bw + 2u], W[bw + 3u]));
}

fn dq4_f16(bw: u32, i4: u32) -> vec4<f32> {
  return vec4<f32>(unpack2x16float(W[bw]), unpack2x16float(W[bw + 1u]));
}

fn dq4_bf16(bw: u32, i4: u32) -> vec4<f32> {
  let a = W[bw];
  let b = W[bw + 1u];
  return bitcast<vec4<f32>>(vec4<u32>(a << 16u, a & 0xffff0000u, b << 16u, b & 0xffff0000u));
}

fn dq4_q8_0(bw: u32, i4: u32) -> vec4<f32> {
  let d = unpack2x16float(W[bw]).x;
  return dq_i8x4(W[bw + 1u + i4]) * d;
}

fn dq4_q4_0(bw: u32, i4: u32) -> vec4<f32> {
  let d = unpack2x16float(W[bw]).x;
  let q = dq_nibbles(W[bw + 1u + (i4 & 3u)], i4 >> 2u);
  return (q - vec4<f32>(8.0)) * d;
}

// Scale and min (6 bits each) of 32-element sub-block j (0..7), as llama.cpp get_scale_min_k4.
fn dq_q4_k_scale_min(bw: u32, j: u32) -> vec2<f32> {
  let a = dq_byte(W[bw + 1u + (j >> 2u)], j);
  let b = dq_byte(W[bw + 2u + (j >> 2u)], j + 4u);  // byte j + 4
  if (j < 4u) {
    return vec2<f32>(f32(a & 63u), f32(b & 63u));
  }
  let c = dq_byte(W[bw + (j >> 2u)], j - 4u);      // byte j - 4
  return vec2<f32>(f32((b & 0xfu) | ((c >> 6u) << 4u)), f32((b >> 4u) | ((a >> 6u) << 4u)));
}

fn dq4_q4_k(bw: u32, i4: u32) -> vec4<f32> {
  let e = 4u * i4;
  let chunk = e >> 6u;          // 64-element chunk: 32 bytes, low nibbles then high nibbles
  let high = (e >> 5u) & 1u;
  let l = e & 31u;
  let dm = unpack2x16float(W[bw]);
  let sm = dq_q4_k_scale_min(bw, e >> 5u);
  let q = dq_nibbles(W[bw + 4u + 8u * chunk + (l >> 2u)], high);
  return q * (dm.x * sm.x) - vec4<f32>(dm.y * sm.y);
}

fn dq4_q6_k(bw: u32, i4: u32) -> vec4<f32> {
  let e = 4u * i4;
  let part = e >> 7u;            // 128-element halves: 64 ql bytes, 32 qh bytes, 8 scales
  let quarter = (e >> 5u) & 3u;  // ql bytes 0..31 or 32..63, low or high nibble; qh bit pair
  let l = e & 31u;
  let qlWord = W[bw + 16u * part + 8u * (quarter & 1u) + (l >> 2u)];
  let qhWord = W[bw + 32u + 8u * part + (l >> 2u)];
  let lo = (vec4<u32>(qlWord) >> (BYTE_SHIFTS + vec4<u32>(4u * (quarter >> 1u)))) & vec4<u32>(0xfu);
  let hi = (vec4<u32>(qhWord) >> (BYTE_SHIFTS + vec4<u32>(2u * quarter))) & vec4<u32>(3u);
  let q = vec4<f32>(lo | (hi << vec4<u32>(4u))) - vec4<f32>(32.0);
  let g = e >> 4u;               // scale index: one int8 per 16 elements
  let sc = bitcast<i32>(W[bw + 48u + (g >> 2u)] << (24u - 8u * (g & 3u))) >> 24u;
  let d = unpack2x16float(W[bw + 52u]).x;
  return q * (d * f32(sc));
}
