import { describe, expect, it } from 'vitest';
import { GgmlType } from '../../src/model/gguf.js';
import {
  UnsupportedTensorTypeError,
  dequantize,
  f16ToF32,
  f32ToF16,
  gpuBytesPerRow,
  ggufBytesPerRow,
  repackForGpu,
} from '../../src/model/quant.js';
import { encodeFloats, quantizeQ4_0, quantizeQ8_0, randomKQuant } from '../../src/model/quantize.js';
import { rng, randomF32 } from '../helpers/gpu.js';

function block(size: number, fill: (v: DataView) => void): Uint8Array {
  const bytes = new Uint8Array(size);
  fill(new DataView(bytes.buffer));
  return bytes;
}

describe('f16 conversion', () => {
  it('encodes known values with round-to-nearest-even and decodes subnormals', () => {
    expect(f32ToF16(1)).toBe(0x3c00);
    expect(f32ToF16(-2)).toBe(0xc000);
    expect(f32ToF16(0.1)).toBe(0x2e66);
    expect(f32ToF16(65504)).toBe(0x7bff);
    expect(f32ToF16(1e6)).toBe(0x7c00);
    expect(f32ToF16(1 + 2 ** -11)).toBe(0x3c00); // tie to even
    expect(f32ToF16(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(f32ToF16(2 ** -24)).toBe(0x0001);
    expect(f16ToF32(0x0001)).toBe(2 ** -24);
    expect(f16ToF32(0x3555)).toBeCloseTo(0.333251953125, 12);
    for (let h = 0; h < 0x7c00; h += 37) expect(f32ToF16(f16ToF32(h))).toBe(h);
  });
});

describe('CPU dequantization of hand-made blocks', () => {
  it('Q8_0: d * int8', () => {
    const b = block(34, (v) => {
      v.setUint16(0, 0x3800, true); // d = 0.5
      [1, -2, 127, -128].forEach((q, j) => v.setInt8(2 + j, q));
      v.setInt8(2 + 31, 5);
    });
    const y = dequantize(GgmlType.Q8_0, b, 32);
    expect(Array.from(y.subarray(0, 5))).toEqual([0.5, -1, 63.5, -64, 0]);
    expect(y[31]).toBe(2.5);
  });

  it('Q4_0: (nibble - 8) * d, low nibbles first then high nibbles', () => {
    const b = block(18, (v) => {
      v.setUint16(0, 0x3400, true); // d = 0.25
      for (let j = 0; j < 16; j++) v.setUint8(2 + j, 0x88);
      v.setUint8(2, 0x9f);
      v.setUint8(2 + 15, 0x08);
    });
    const y = dequantize(GgmlType.Q4_0, b, 32);
    expect(y[0]).toBe(1.75);
    expect(y[16]).toBe(0.25);
    expect(y[15]).toBe(0);
    expect(y[31]).toBe(-2);
    expect(y[5]).toBe(0);
  });

  it('Q4_K: d * scale * nibble - dmin * min with 6-bit packed scales', () => {
    const b = block(144, (v) => {
      v.setUint16(0, 0x3c00, true); // d = 1
      v.setUint16(2, 0x3800, true); // dmin = 0.5
      v.setUint8(4 + 0, 2 | (1 << 6)); // sub-block 0 scale 2; high bits of sub-block 4's scale = 1
      v.setUint8(4 + 4, 3 | (2 << 6)); // sub-block 0 min 3; high bits of sub-block 4's min = 2
      v.setUint8(4 + 8, 0x35); // sub-block 4: scale low 5, min low 3 -> scale 21, min 35
      v.setUint8(4 + 9, 0x21); // sub-block 5: scale 1, min 2
      v.setUint8(16 + 0, 0x07);
      v.setUint8(16 + 64, 0xa4);
    });
    const y = dequantize(GgmlType.Q4_K, b, 256);
    expect(y[0]).toBe(1 * 2 * 7 - 0.5 * 3);
    expect(y[1]).toBe(-1.5);
    expect(y[32]).toBe(0);
    expect(y[128]).toBe(21 * 4 - 0.5 * 35);
    expect(y[129]).toBe(-17.5);
    expect(y[160]).toBe(1 * 10 - 0.5 * 2);
  });

  it('Q6_K: d * int8 scale * (6-bit q - 32) from ql nibbles and qh bit pairs', () => {
    const b = block(210, (v) => {
      v.setUint8(0, 0x21); // ql[0]: element 0 low bits 1, element 64 low bits 2
      v.setUint8(16, 0x03); // ql[16]: element 16
      v.setUint8(64, 0x0f); // ql[64]: element 128
      v.setUint8(128, 0xe4); // qh[0]: high bits 0, 1, 2, 3 of elements 0, 32, 64, 96
      [-3, 7, 4, 0, 1, 0, 2, 0, 5].forEach((s, i) => v.setInt8(192 + i, s));
      v.setUint16(208, 0x3800, true); // d = 0.5
    });
    const y = dequantize(GgmlType.Q6_K, b, 256);
    expect(y[0]).toBe(0.5 * -3 * (1 - 32));
    expect(y[16]).toBe(0.5 * 7 * (3 - 32));
    expect(y[32]).toBe(0.5 * 4 * (16 - 32));
    expect(y[64]).toBe(0.5 * 1 * (2 + 32 - 32));
    expect(y[96]).toBe(0.5 * 2 * (48 - 32));
    expect(y[128]).toBe(0.5 * 5 * (15 - 32));
  });

  it('F16 and BF16 rows', () => {
    const f16 = new Uint8Array(new Uint16Array([0x3c00, 0xc000, 0x3800, 0x0001]).buffer);
    expect(Array.from(dequantize(GgmlType.F16, f16, 4))).toEqual([1, -2, 0.5, 2 ** -24]);
    const bf16 = new Uint8Array(new Uint16Array([0x3f80, 0xc040, 0x3e00]).buffer);
    expect(Array.from(dequantize(GgmlType.BF16, bf16, 3))).toEqual([1, -3, 0.125]);
  });
});

describe('reference quantizers', () => {
  it('Q8_0 round-trips within half a step plus the f16 rounding of d', () => {
    const x = randomF32(256, 1, 3);
    const y = dequantize(GgmlType.Q8_0, quantizeQ8_0(x), 256);
    for (let b = 0; b < 8; b++) {
      const amax = Math.max(...Array.from(x.subarray(b * 32, b * 32 + 32), Math.abs));
      for (let j = b * 32; j < b * 32 + 32; j++) expect(Math.abs(y[j] - x[j])).toBeLessThanOrEqual((amax / 127) * 0.6);
    }
  });

  it('Q4_0 maps the largest magnitude to -8 * d and round-trips within a step', () => {
    const x = randomF32(128, 2, 2);
    const q = quantizeQ4_0(x);
    const y = dequantize(GgmlType.Q4_0, q, 128);
    for (let b = 0; b < 4; b++) {
      const d = f16ToF32(new DataView(q.buffer).getUint16(b * 18, true));
      for (let j = b * 32; j < b * 32 + 32; j++) expect(Math.abs(y[j] - x[j])).toBeLessThanOrEqual(Math.abs(d) * 1.01);
    }
  });

  it('random K-quant blocks stay finite and bounded', () => {
    for (const type of [GgmlType.Q4_K, GgmlType.Q6_K] as const) {
      const y = dequantize(type, randomKQuant(type, 16, rng(3)), 16 * 256);
      expect(y.every((v) => Number.isFinite(v) && Math.abs(v) < 20)).toBe(true);
    }
  });
});

describe('GPU repacking', () => {
  it('pads Q8_0, Q4_0 and Q6_K blocks to whole words and keeps the rest', () => {
    expect(gpuBytesPerRow(GgmlType.Q8_0, 64)).toBe(72);
    expect(gpuBytesPerRow(GgmlType.Q4_0, 64)).toBe(40);
    expect(gpuBytesPerRow(GgmlType.Q6_K, 512)).toBe(424);
    expect(gpuBytesPerRow(GgmlType.Q4_K, 256)).toBe(144);
    expect(gpuBytesPerRow(GgmlType.F16, 6)).toBe(12);
    expect(gpuBytesPerRow(GgmlType.F16, 3)).toBe(8);
    expect(ggufBytesPerRow(GgmlType.Q6_K, 512)).toBe(420);
    const q8 = quantizeQ8_0(randomF32(64, 4));
    const packed = repackForGpu(GgmlType.Q8_0, q8, 1, 64);
    expect(packed.length).toBe(72);
    expect(Array.from(packed.subarray(36, 38))).toEqual(Array.from(q8.subarray(34, 36)));
    expect(Array.from(packed.subarray(40, 72))).toEqual(Array.from(q8.subarray(36, 68)));
    const f16 = encodeFloats(GgmlType.F16, new Float32Array([1, 2, 3, 4, 5, 6]));
    const rows = repackForGpu(GgmlType.F16, f16, 2, 3);
    expect(Array.from(new Uint16Array(rows.buffer, rows.byteOffset, 8))).toEqual([0x3c00, 0x4000, 0x4200, 0, 0x4400, 0x4500, 0x4600, 0]);
  });

  it('names the tensor and type when the type is not supported', () => {
    expect(() => repackForGpu(GgmlType.Q5_K, new Uint8Array(176), 1, 256, 'blk.3.ffn_up.weight')).toThrow(UnsupportedTensorTypeError);
    expect(() => dequantize(GgmlType.Q2_K, new Uint8Array(84), 256, 'output.weight')).toThrow(/output\.weight.*Q2_K/);
  });

  it('rejects rows that are not whole blocks', () => {
    expect(() => gpuBytesPerRow(GgmlType.Q8_0, 40, 'blk.0.attn_k.weight')).toThrow(/blk\.0\.attn_k\.weight \(Q8_0\).*40/);
  });
});
