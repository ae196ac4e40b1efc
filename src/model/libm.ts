// sinf and cosf as glibc computes them (its implementation is ARM's optimized-routines
// sinf/cosf, MIT licensed: evaluated in double, then rounded to f32), so that the RoPE table
// carries the very values llama.cpp's CPU rope gets from libm. About 1% of glibc's results differ
// from the correctly rounded f32 in the last bit; those flips are what this reproduces.
// Reductions: |x| < pi/4 none; |x| < 120 one multiply-subtract by pi/2 (fused there; exact here
// through a split product); larger by 4/pi to 192 bits in integer arithmetic.

const PI64 = 3.4061215800865545e-19; // pi * 2^-64
const HPI_INV = 10680707.430881744; // 2/pi * 2^24
const HPI = 1.5707963267948966; // pi / 2
// HPI split so n * HPI_HI is exact for |n| < 2^26.
const HPI_HI = 1.5707963109016418;
const HPI_LO = HPI - HPI_HI;

interface Poly { c0: number; c1: number; c2: number; c3: number; c4: number; s1: number; s2: number; s3: number }
const SIGN = [1, -1, -1, 1];
const POLY: Poly = {
  c0: 1, c1: -0.49999999725108224, c2: 0.041666623324344516, c3: -0.001388676379437604, c4: 2.4390450703564542e-05,
  s1: -0.16666654943701084, s2: 0.008332178146138854, s3: -0.00019517298981385725,
};
// The second table computes -cos(x), for quadrants 2 and 3.
const POLY_NEG_COS: Poly = { ...POLY, c0: -1, c1: -POLY.c1, c2: -POLY.c2, c3: -POLY.c3, c4: -POLY.c4 };
// 4/pi to 192 bits, 8 new bits per entry.
const INV_PIO4 = [
  0xa2, 0xa2f9, 0xa2f983, 0xa2f9836e, 0xf9836e4e, 0x836e4e44, 0x6e4e4415, 0x4e441529,
  0x441529fc, 0x1529fc27, 0x29fc2757, 0xfc2757d1, 0x2757d1f5, 0x57d1f534, 0xd1f534dd, 0xf534ddc0,
  0x34ddc0db, 0xddc0db62, 0xc0db6295, 0xdb629599, 0x6295993c, 0x95993c43, 0x993c4390, 0x3c439041,
];
const TWO_32 = 2 ** 32;

/** The 64-bit product of two u32 as [high word, low word], exact (16-bit limbs). */
function mul32(a: number, b: number): [number, number] {
  const aLo = a & 0xffff, aHi = a >>> 16, bLo = b & 0xffff, bHi = b >>> 16;
  const t = aLo * bLo;
  const m = aHi * bLo + aLo * bHi + Math.floor(t / 65536);
  return [aHi * bHi + Math.floor(m / 65536), (m % 65536) * 65536 + (t % 65536)];
}

const word = new Float32Array(1);
const wordBits = new Uint32Array(word.buffer);

function bitsOf(y: number): number {
  word[0] = y;
  return wordBits[0];
}

/** sin (n even) or cos (n odd) polynomial of x in [-pi/4, pi/4]. */
function poly(x: number, x2: number, p: Poly, n: number): number {
  if ((n & 1) === 0) {
    const x3 = x * x2;
    const s1 = p.s2 + x2 * p.s3;
    const x7 = x3 * x2;
    const s = x + x3 * p.s1;
    return Math.fround(s + x7 * s1);
  }
  const x4 = x2 * x2;
  const c2 = p.c3 + x2 * p.c4;
  const c1 = p.c0 + x2 * p.c1;
  const x6 = x4 * x2;
  const c = c1 + x4 * p.c2;
  return Math.fround(c + x6 * c2);
}

function reduceFast(x: number): { r: number; n: number } {
  const n = ((Math.trunc(x * HPI_INV) + 0x800000) >> 24);
  return { r: (x - n * HPI_HI) - n * HPI_LO, n };
}

/** reduce_large: the exact 2.62 fixed-point product of x and 4/pi, in u32 words. */
function reduceLarge(xi: number): { r: number; n: number } {
  const at = (xi >>> 26) & 15;
  const m = (((xi & 0xffffff) | 0x800000) << ((xi >>> 23) & 7)) >>> 0;
  const res0 = Math.imul(m, INV_PIO4[at]) >>> 0;
  const [hi1, lo1] = mul32(m, INV_PIO4[at + 4]);
  const [hi2] = mul32(m, INV_PIO4[at + 8]);
  // acc = ((res2 >> 32) | (res0 << 32)) + res1, modulo 2^64
  const lo = hi2 + lo1;
  let hi = (res0 + hi1 + (lo >= TWO_32 ? 1 : 0)) >>> 0;
  const n = ((hi + 0x20000000) >>> 0) >>> 30;  // (acc + 2^61) >> 62
  hi = (hi - n * 0x40000000) >>> 0;  // acc -= n << 62
  return { r: ((hi | 0) * TWO_32 + (lo % TWO_32)) * PI64, n };
}

function sinCosf(y: number, cos: boolean): number {
  const top = (bitsOf(y) >>> 20) & 0x7ff;
  const x = y;
  if (top < (bitsOf(Math.PI / 4) >>> 20 & 0x7ff)) {
    if (top < ((bitsOf(2 ** -12) >>> 20) & 0x7ff)) return cos ? 1 : y;
    return poly(x, x * x, POLY, cos ? 1 : 0);
  }
  if (!Number.isFinite(y)) return NaN;
  let r: number;
  let n: number;
  let quadrant: number;
  if (top < ((bitsOf(120) >>> 20) & 0x7ff)) {
    ({ r, n } = reduceFast(x));
    quadrant = n;
  } else {
    ({ r, n } = reduceLarge(bitsOf(y)));
    quadrant = n + (bitsOf(y) >>> 31);
  }
  const p = quadrant & 2 ? POLY_NEG_COS : POLY;
  return poly(r * SIGN[quadrant & 3], r * r, p, cos ? n ^ 1 : n);
}

/** glibc's sinf(y) for an f32 y. */
export function sinf(y: number): number {
  return sinCosf(Math.fround(y), false);
}

/** glibc's cosf(y) for an f32 y. */
export function cosf(y: number): number {
  return sinCosf(Math.fround(y), true);
}
