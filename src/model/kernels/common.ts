// Helpers shared by the kernel wrappers and their CPU references.

const MAX_GROUPS_PER_DIM = 65535;

/** Workgroups for `items` items at `perGroup` items each, folded into 2D (the shaders use wid.y * nwg.x + wid.x). */
export function grid(items: number, perGroup = 1): [number, number] {
  const groups = Math.ceil(items / perGroup);
  if (groups === 0) return [0, 1];
  const x = Math.min(groups, MAX_GROUPS_PER_DIM);
  return [x, Math.ceil(groups / x)];
}

/** Uniform params of four-byte fields (u32 or f32), padded to a 16-byte multiple. */
export function packParams(fields: Array<{ u32: number } | { f32: number }>): Uint32Array {
  const words = new Uint32Array(Math.ceil(fields.length / 4) * 4);
  const floats = new Float32Array(words.buffer);
  fields.forEach((f, i) => {
    if ('u32' in f) words[i] = f.u32 >>> 0;
    else floats[i] = f.f32;
  });
  return words;
}

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** IEEE binary16 bits of x, rounded to nearest even (as pack2x16float). */
export function f32ToF16Bits(x: number): number {
  f32Scratch[0] = x;
  const bits = u32Scratch[0];
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  const mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    const m = mant | 0x800000;
    const shift = 14 - e;
    return sign | roundShift(m, shift);
  }
  return (sign | (e << 10)) + roundShift(mant, 13);
}

// m >> shift, rounded to nearest even (a carry into the exponent is the correct result).
function roundShift(m: number, shift: number): number {
  const q = m >>> shift;
  const rest = m - q * 2 ** shift;
  const half = 2 ** (shift - 1);
  return rest > half || (rest === half && (q & 1) === 1) ? q + 1 : q;
}

export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

export function roundToF16(x: number): number {
  return f16BitsToF32(f32ToF16Bits(x));
}
