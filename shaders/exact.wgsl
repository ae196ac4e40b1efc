// Correctly rounded f32 arithmetic that WGSL does not promise, built from the operations it
// does round correctly (+, -, *, and round()): llama.cpp's CPU results depend on it.
//   div_rn    a / b (WGSL '/' may be off by 2.5 ULP)
//   f16_grid  x rounded to f16, ties to even (WGSL leaves f32 -> f16 rounding open)
//   fma4      a * b + c rounded once (WGSL's fma() may round twice; SwiftShader's does), as
//             _mm256_fmadd_ps and compiler-contracted a * b + c in llama.cpp's x86 build; the
//             hardware fma() itself where the runtime found it fused (define FUSED_FMA)
//   sqrt_rn   sqrt(a) (WGSL's sqrt() may be off by 2.5 ULP)
//   exp_rn    e^x rounded to nearest in all but ~2^-16 of cases (WGSL's exp() has no bound; glibc's
//             expf, which llama.cpp calls, is correctly rounded in all but ~0.06%)
//   ggml_expf4  llama.cpp's own vectorized expf (ggml_v_expf, x86 AVX2 + FMA) bit for bit: its
//             softmax and SiLU use it
//   ff_*      float-float (hi, lo) sums and products, for sums llama.cpp takes in double
// Assumes no overflow, underflow or subnormals where noted (true of activations, weights and
// their scales). Included by quantize_act, matmul_q8, rope and attention.

/** a / b rounded to nearest even, for positive normal a and b (long division of the mantissas). */
fn div_rn(a: f32, b: f32) -> f32 {
  let ua = bitcast<u32>(a);
  let ub = bitcast<u32>(b);
  let ea = ua >> 23u;
  let eb = ub >> 23u;
  if (ea == 0u || ea >= 255u || eb == 0u || eb >= 255u) {
    return a / b;  // zero, subnormal, inf, NaN: never the scale of a block of activations
  }
  var e = i32(ea) - i32(eb) + 127;
  var r = (ua & 0x7fffffu) | 0x800000u;
  let mb = (ub & 0x7fffffu) | 0x800000u;
  if (r < mb) {
    r <<= 1u;
    e -= 1;
  }
  // r / mb in [1, 2): 24 quotient bits and a guard bit; the remainder is the sticky bit.
  var q = 0u;
  for (var i = 0u; i < 25u; i++) {
    q <<= 1u;
    if (r >= mb) {
      r -= mb;
      q |= 1u;
    }
    r <<= 1u;
  }
  var m = q >> 1u;
  if ((q & 1u) != 0u && (r != 0u || (m & 1u) != 0u)) {
    m += 1u;
  }
  if (m == 0x1000000u) {
    m >>= 1u;
    e += 1;
  }
  if (e <= 0 || e >= 255) {
    return a / b;
  }
  return bitcast<f32>((u32(e) << 23u) | (m & 0x7fffffu));
}

/** x rounded to the nearest f16 value (ties to even), as an f32; overflow gives infinity. */
fn f16_grid(x: f32) -> f32 {
  let u = bitcast<u32>(x);
  let a = u & 0x7fffffffu;
  if (a >= 0x7f800000u) {
    return x;
  }
  if (a < 0x38800000u) {
    // Below 2^-14: the f16 subnormal grid, multiples of 2^-24 (both scalings are exact).
    return round(x * 16777216.0) * 5.9604644775390625e-8;
  }
  var r = (a + 0xfffu + ((a >> 13u) & 1u)) & 0xffffe000u;
  if (r > 0x477fe000u) {
    r = 0x7f800000u;  // past 65504
  }
  return bitcast<f32>(r | (u & 0x80000000u));
}


fn next_up(x: f32) -> f32 {
  return bitcast<f32>(bitcast<u32>(x) + 1u);
}

fn next_down(x: f32) -> f32 {
  return bitcast<f32>(bitcast<u32>(x) - 1u);
}

/**
 * sqrt(a) rounded to nearest, for positive normal a: the builtin's result moved by whole ulps
 * while the exact residual a - s^2 (two_prod4) says the root lies past a midpoint.
 */
fn sqrt_rn(a: f32) -> f32 {
  var s = sqrt(a);
  for (var i = 0; i < 4; i++) {
    let p = two_prod4(vec4<f32>(s), vec4<f32>(s));
    let r = (a - p[0].x) - p[1].x;  // a - s^2; a - p exact (Sterbenz)
    if (r > s * (next_up(s) - s)) {
      s = next_up(s);
    } else if (r < -s * (s - next_down(s))) {
      s = next_down(s);
    } else {
      break;
    }
  }
  return s;
}

/** a * b exactly, as p + e (Dekker's product: operands split into 12-bit halves by masking, every partial product exact). */
fn two_prod4(a: vec4<f32>, b: vec4<f32>) -> array<vec4<f32>, 2> {
  let p = a * b;
  let ah = bitcast<vec4<f32>>(bitcast<vec4<u32>>(a) & vec4<u32>(0xfffff000u));
  let bh = bitcast<vec4<f32>>(bitcast<vec4<u32>>(b) & vec4<u32>(0xfffff000u));
  let al = a - ah;
  let bl = b - bh;
  return array<vec4<f32>, 2>(p, (((ah * bh - p) + ah * bl) + al * bh) + al * bl);
}

/**
 * c + p + pe rounded once, where p + pe is an exact product (Boldo and Melquiond's emulated
 * FMA): (th, tl) = TwoSum(c, p), v = tl + pe rounded to odd, result = th + v.
 */
fn sum3_rn4(c: vec4<f32>, p: vec4<f32>, pe: vec4<f32>) -> vec4<f32> {
  let th = c + p;
  let cb = th - p;
  let tl = (c - cb) + (p - (th - cb));
  let v = tl + pe;
  let vb = v - tl;
  let ve = (tl - (v - vb)) + (pe - vb);
  let bits = bitcast<vec4<u32>>(v);
  let odd = select(bits - vec4<u32>(1u), bits + vec4<u32>(1u), (ve > vec4<f32>(0.0)) == (v > vec4<f32>(0.0)));
  let inexactEven = (ve != vec4<f32>(0.0)) & ((bits & vec4<u32>(1u)) == vec4<u32>(0u));
  return th + bitcast<vec4<f32>>(select(bits, odd, inexactEven));
}

const FUSED_FMA: bool = {{FUSED_FMA}};

/** a * b + c rounded once, per component. */
fn fma4(a: vec4<f32>, b: vec4<f32>, c: vec4<f32>) -> vec4<f32> {
  if (FUSED_FMA) { return fma(a, b, c); }
  let pr = two_prod4(a, b);
  return sum3_rn4(c, pr[0], pr[1]);
}

/** a + b exactly, as (sum, error) (Knuth's TwoSum). */
fn two_sum(a: f32, b: f32) -> vec2<f32> {
  let s = a + b;
  let bb = s - a;
  return vec2<f32>(s, (a - (s - bb)) + (b - bb));
}

/** Float-float a + b, normalized. */
fn ff_add(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
  let s = two_sum(a.x, b.x);
  let lo = s.y + (a.y + b.y);
  let hi = s.x + lo;
  return vec2<f32>(hi, lo - (hi - s.x));
}

/** Float-float a * b, normalized. */
fn ff_mul(a: vec2<f32>, b: vec2<f32>) -> vec2<f32> {
  let p = two_prod4(vec4<f32>(a.x), vec4<f32>(b.x));
  let lo = p[1].x + (a.x * b.y + a.y * b.x);
  let hi = p[0].x + lo;
  return vec2<f32>(hi, lo - (hi - p[0].x));
}

// ln 2 = LN2_1 + LN2_2 + LN2_3; LN2_1 has 16 significant bits, so k * LN2_1 is exact for |k| < 2^8.
const LN2_1: f32 = 0.693145751953125;
const LN2_2: f32 = 1.4286067653302860e-6;
const LN2_3: f32 = 5.4956039718945250e-14;

/**
 * e^x: x = k ln 2 + r (|r| <= ln 2 / 2, r in float-float), e^r by its Taylor series (float-float
 * Horner for the terms up to r^5, f32 for r^6 .. r^11: the error stays below 2^-40), times 2^k.
 */
fn exp_rn(x: f32) -> f32 {
  if (x < -104.0) { return 0.0; }
  if (x > 88.8) { return x * 1e38; }  // overflows to +inf (a constant inf is not valid WGSL)
  let k = round(x * 1.4426950408889634);
  let t = x - k * LN2_1;  // exact: k * LN2_1 is, and t is within a factor 2 of x (Sterbenz)
  let kl = two_prod4(vec4<f32>(k), vec4<f32>(LN2_2));
  let r = ff_add(vec2<f32>(t, 0.0), vec2<f32>(-kl[0].x, -kl[1].x - k * LN2_3));
  var tail = 2.5052108385441720e-8;  // 1/11!
  tail = tail * r.x + 2.7557319223985893e-7;
  tail = tail * r.x + 2.7557319223985888e-6;
  tail = tail * r.x + 2.4801587301587302e-5;
  tail = tail * r.x + 1.9841269841269841e-4;
  tail = tail * r.x + 1.3888888888888889e-3;  // 1/6!
  // 1/5! .. 1/0! as float-float (hi, lo)
  var e = ff_add(ff_mul(vec2<f32>(tail, 0.0), r), vec2<f32>(8.3333338e-3, -4.3461720e-10));
  e = ff_add(ff_mul(e, r), vec2<f32>(4.1666668e-2, -1.2417635e-9));
  e = ff_add(ff_mul(e, r), vec2<f32>(1.6666667e-1, -4.9670539e-9));
  e = ff_add(ff_mul(e, r), vec2<f32>(0.5, 0.0));
  e = ff_add(ff_mul(e, r), vec2<f32>(1.0, 0.0));
  e = ff_add(ff_mul(e, r), vec2<f32>(1.0, 0.0));
  let ki = i32(k);
  if (ki < -126) {
    return e.x * bitcast<f32>(u32(ki + 64 + 127) << 23u) * 5.421010862427522e-20;  // 2^-64
  }
  if (ki > 127) {
    return e.x * 2.0 * bitcast<f32>(u32(ki - 1 + 127) << 23u);
  }
  return e.x * bitcast<f32>(u32(ki + 127) << 23u);
}

/**
 * ggml_v_expf (ggml-cpu/vec.h, the __m256 version: x86 AVX2 with FMA), operation for operation:
 * n = round(x / ln 2) by the 0x1.8p23 shift, b = x - n ln 2 in two fused steps, a degree-5
 * polynomial j, result k + k j with k = 2^n; |n| > 126 takes the two-factor scaling.
 */
fn ggml_expf4(x: vec4<f32>) -> vec4<f32> {
  let r = vec4<f32>(12582912.0);  // 0x1.8p23
  let z = fma4(x, vec4<f32>(1.4426950216293335), r);  // 0x1.715476p+0
  let n = z - r;
  let b = fma4(-n, vec4<f32>(1.428606765330187e-6),  // 0x1.7f7d1cp-20
    fma4(-n, vec4<f32>(0.693145751953125), x));  // 0x1.62e4p-1
  let e = bitcast<vec4<u32>>(z) << vec4<u32>(23u);
  let k = bitcast<vec4<f32>>(e + bitcast<vec4<u32>>(vec4<f32>(1.0)));
  let c = abs(n) > vec4<f32>(126.0);
  let u = b * b;
  let j = fma4(fma4(fma4(vec4<f32>(0.008247390389442444), b, vec4<f32>(0.04189976677298546)), u,  // 0x1.0e4020p-7, 0x1.573e2ep-5
      fma4(vec4<f32>(0.16668395698070526), b, vec4<f32>(0.4999912679195404))),  // 0x1.555e66p-3, 0x1.fffdb6p-2
    u, vec4<f32>(0.9999994039535522) * b);  // 0x1.ffffecp-1
  let plain = fma4(k, j, k);
  if (!any(c)) { return plain; }
  let g = select(vec4<u32>(0u), vec4<u32>(0x82000000u), n <= vec4<f32>(0.0));
  let s1 = bitcast<vec4<f32>>(g + vec4<u32>(0x7f000000u));
  let s2 = bitcast<vec4<f32>>(e - g);
  let d = abs(n) > vec4<f32>(192.0);
  return select(select(plain, fma4(s2, j, s2) * s1, c), s1 * s1, d);
}

/** (hi + lo) / n rounded to f32, for a positive float-float and n (correct but for near-ties). */
fn ff_div_rn(a: vec2<f32>, n: f32) -> f32 {
  let q = div_rn(a.x, n);
  let p = two_prod4(vec4<f32>(q), vec4<f32>(n));
  let rem = ((a.x - p[0].x) - p[1].x) + a.y;  // a - q n, exact up to the last term
  return q + rem / n;
}
