// The context store's GPU path: pages of a live cache compressed to a store format on the GPU
// and read back (compressKvPages), and stored bytes restored into other pages of a live cache
// (restoreKvPages), against the CPU reference of every format.
import { describe, expect, it } from 'vitest';
import { compressKvPages, restoreKvPages, type PageBytes } from '../../src/model/kernels/kv-transfer.js';
import { kvBufferBytes, kvPageBytes, kvPageValues, writeKv, type KvFormat, type KvLayout } from '../../src/model/kernels/kv.js';
import { decodeKvCache, encodeKvCache } from '../../src/model/kernels/kv.reference.js';
import { getRuntime, maxAbsDiff, randomF32 } from '../helpers/gpu.js';

const SHAPE = { numPages: 8, pageSize: 4, numKvHeads: 2, headDim: 32 };
const LAYERS = 2;

interface Live {
  layout: KvLayout;
  keys: GPUBuffer[];
  values: GPUBuffer[];
}

/** A live cache whose every page holds random K and V rows written by the KV write. */
async function filledCache(format: KvFormat, seed: number): Promise<Live> {
  const rt = await getRuntime();
  const layout: KvLayout = { ...SHAPE, format };
  const tokens = SHAPE.numPages * SHAPE.pageSize;
  const row = SHAPE.numKvHeads * SHAPE.headDim;
  const slots = rt.buffers.createWith('slots', Int32Array.from({ length: tokens }, (_, i) => i));
  const live: Live = { layout, keys: [], values: [] };
  for (let l = 0; l < LAYERS; l++) {
    live.keys.push(rt.buffers.create(`k${l}`, kvBufferBytes(layout)));
    live.values.push(rt.buffers.create(`v${l}`, kvBufferBytes(layout)));
    writeKv(rt, layout, rt.buffers.createWith('k', randomF32(tokens * row, seed + l, 3)), rt.buffers.createWith('v', randomF32(tokens * row, seed + 50 + l, 3)),
      slots, live.keys[l], live.values[l], tokens);
  }
  await rt.sync();
  return live;
}

/** Logical values of page `p` of a cache buffer's bytes. */
function pageValues(layout: KvLayout, bytes: ArrayBuffer | Uint8Array, p: number): Float32Array {
  const all = decodeKvCache(layout, bytes instanceof Uint8Array ? bytes.slice().buffer : bytes);
  return all.subarray(p * kvPageValues(layout), (p + 1) * kvPageValues(layout));
}

const LIVE: KvFormat[] = ['f32', 'f16', 'q8_0', 'q4_0'];

describe('compressKvPages', () => {
  for (const format of LIVE) {
    it(`${format} pages to q8_0 bytes: the reference's quantization of the live values`, async () => {
      const rt = await getRuntime();
      const live = await filledCache(format, 10);
      const pages = [5, 0, 3];
      const out = await compressKvPages(rt, live.layout, live, pages, { format: 'q8_0' });
      const onePage: KvLayout = { ...SHAPE, numPages: 1, format: 'q8_0' };
      expect(out).toHaveLength(3);
      for (let l = 0; l < LAYERS; l++) {
        const liveK = await rt.buffers.read(live.keys[l]);
        const liveV = await rt.buffers.read(live.values[l]);
        pages.forEach((p, i) => {
          expect(out[i].k[l]).toEqual(encodeKvCache(onePage, pageValues(live.layout, liveK, p)));
          expect(out[i].v[l]).toEqual(encodeKvCache(onePage, pageValues(live.layout, liveV, p)));
          if (format === 'q8_0') expect(out[i].k[l]).toEqual(new Uint8Array(liveK, p * kvPageBytes(live.layout), kvPageBytes(live.layout)));
        });
      }
    });
  }

  it('q8_0 bytes are 0.53x of f16 pages, q4_0 0.28x', () => {
    const f16 = kvPageBytes({ ...SHAPE, format: 'f16' });
    expect(kvPageBytes({ ...SHAPE, format: 'q8_0' }) / f16).toBeCloseTo(34 / 64, 3);
    expect(kvPageBytes({ ...SHAPE, format: 'q4_0' }) / f16).toBeCloseTo(18 / 64, 3);
  });

  it('refuses pages outside the cache', async () => {
    const rt = await getRuntime();
    const live = await filledCache('f16', 1);
    await expect(compressKvPages(rt, live.layout, live, [8])).rejects.toThrow(/page 8 is outside the 8 pages/);
  });
});

describe('restoreKvPages', () => {
  for (const format of LIVE) {
    it(`q8_0 bytes into ${format} pages: the stored values in the live format, other pages untouched`, async () => {
      const rt = await getRuntime();
      const source = await filledCache('f16', 20);
      const stored = await compressKvPages(rt, source.layout, source, [1, 2, 6], { format: 'q8_0' });
      const live = await filledCache(format, 30);
      const before = await Promise.all(live.keys.map((b) => rt.buffers.read(b)));
      const dst = [7, 0, 4];
      await restoreKvPages(rt, live.layout, live, dst, { format: 'q8_0' }, stored);
      const onePage: KvLayout = { ...SHAPE, numPages: 1, format: 'q8_0' };
      const liveOne: KvLayout = { ...live.layout, numPages: 1 };
      for (let l = 0; l < LAYERS; l++) {
        const after = await rt.buffers.read(live.keys[l]);
        const afterV = await rt.buffers.read(live.values[l]);
        dst.forEach((p, i) => {
          // The stored values, as the live format holds them (quantized again for q4_0).
          const want = (bytes: Uint8Array) => pageValues(liveOne, encodeKvCache(liveOne, pageValues(onePage, bytes, 0)), 0);
          expect(maxAbsDiff(pageValues(live.layout, after, p), want(stored[i].k[l]))).toBe(0);
          expect(maxAbsDiff(pageValues(live.layout, afterV, p), want(stored[i].v[l]))).toBe(0);
        });
        for (const p of [1, 2, 3, 5, 6]) expect(pageValues(live.layout, after, p)).toEqual(pageValues(live.layout, before[l], p));
      }
    });
  }

  it('refuses data that does not fit the layout', async () => {
    const rt = await getRuntime();
    const live = await filledCache('f16', 1);
    const bad: PageBytes = { k: [new Uint8Array(4), new Uint8Array(4)], v: [new Uint8Array(4), new Uint8Array(4)] };
    await expect(restoreKvPages(rt, live.layout, live, [0], { format: 'q8_0' }, [bad])).rejects.toThrow(/2 layers of 272 bytes/);
  });
});
