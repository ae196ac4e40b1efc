import { describe, expect, it } from 'vitest';
import { getRuntime, rng } from '../helpers/gpu.js';

describe('gpu runtime', () => {
  it('creates a device and runs the copy kernel through one submission', async () => {
    const rt = await getRuntime();
    expect(rt.gpu.adapter.description.length + rt.gpu.adapter.vendor.length).toBeGreaterThan(0);
    const n = 1000; // vec4 words
    const data = new Uint32Array(n * 4).map((_, i) => i * 7 + 1);
    const src = rt.buffers.createWith('src', data);
    const dst = rt.buffers.create('dst', data.byteLength);
    rt.dispatch({ shader: 'util', entryPoint: 'copy_vec4' }, new Uint32Array([n, 0, 0, 0]), [src, dst], [Math.ceil(n / 256)]);
    await rt.sync();
    const back = new Uint32Array(await rt.buffers.read(dst));
    expect(Array.from(back)).toEqual(Array.from(data));
  });

  it('compiles a shader and names a missing entry point', async () => {
    const rt = await getRuntime();
    await rt.pipelines.check({ shader: 'util', entryPoint: 'copy_vec4' });
    await expect(rt.pipelines.check({ shader: 'util', entryPoint: 'no_such_entry' })).rejects.toThrow(/util\.wgsl \(no_such_entry\)/);
  });
});

describe('device arithmetic', () => {
  it('knows whether fma() rounds once: the exact kernels\' emulated fma equals it on every triple only if so', async () => {
    const rt = await getRuntime();
    const { fmaF32 } = await import('../../src/model/kernels/matmul.reference.js');
    const n = 4096;
    const r = rng(77);
    const triples = Float32Array.from({ length: 3 * n }, () => (r() * 2 - 1) * 2 ** Math.floor(r() * 8 - 4));
    const io = rt.buffers.createWith('io', Float32Array.from([...triples, ...new Float32Array(2 * n)]));
    // FUSED_FMA 'false' forces the emulation, whatever the device.
    rt.dispatch({ shader: 'probe', entryPoint: 'compare_fma', defines: { FUSED_FMA: 'false' } }, null, [io], [n / 64]);
    await rt.sync();
    const out = await rt.buffers.readF32(io, 12 * n, 2 * n);
    let emulatedExact = 0;
    let builtinDiffers = 0;
    for (let i = 0; i < n; i++) {
      const want = fmaF32(triples[3 * i], triples[3 * i + 1], triples[3 * i + 2]);
      if (out[2 * i] === want) emulatedExact++;
      if (out[2 * i + 1] !== out[2 * i]) builtinDiffers++;
    }
    expect(emulatedExact).toBe(n);
    expect(builtinDiffers === 0).toBe(rt.arithmetic.fusedFma);
  });
});

describe('device loss', () => {
  it('turns a lost device into a clear error on the next GPU call', async () => {
    const { GpuRuntime, GpuDeviceLostError } = await import('../../src/gpu/index.js');
    const rt = await GpuRuntime.create();
    const buf = rt.buffers.create('x', 64);
    rt.device.destroy();
    const err = await rt.gpu.lost;
    expect(err).toBeInstanceOf(GpuDeviceLostError);
    expect(err.message).toMatch(/GPU device lost \(destroyed\)/);
    expect(() => rt.dispatch({ shader: 'util', entryPoint: 'copy_vec4' }, new Uint32Array(4), [buf, buf], [1])).toThrow(GpuDeviceLostError);
    await expect(rt.sync()).rejects.toThrow(GpuDeviceLostError);
    rt.destroy();
  });
});

describe('buffers', () => {
  it('refuses a buffer larger than the device allows, naming it', async () => {
    const rt = await getRuntime();
    const tooBig = rt.gpu.limits.maxBufferSize + 4;
    expect(() => rt.buffers.create('kv.huge', tooBig)).toThrow(/not enough GPU memory: buffer kv\.huge needs \d+ bytes/);
  });

  it('returns bytes to the account when buffers are destroyed', async () => {
    const rt = await getRuntime();
    const before = rt.buffers.bytesAllocated;
    const b = rt.buffers.create('tmp', 1000);
    expect(rt.buffers.bytesAllocated).toBe(before + 1000);
    rt.buffers.destroy(b);
    expect(rt.buffers.bytesAllocated).toBe(before);
  });
});

describe('profiler', () => {
  it('times each kernel with timestamp queries when the adapter has them', async () => {
    const rt = await getRuntime();
    if (!rt.profiler.available) {
      expect(rt.profiler.enable()).toBe(false);
      return;
    }
    expect(rt.profiler.enable()).toBe(true);
    const src = rt.buffers.create('p.src', 4096);
    const dst = rt.buffers.create('p.dst', 4096);
    for (let i = 0; i < 3; i++) rt.dispatch({ shader: 'util', entryPoint: 'copy_vec4' }, new Uint32Array([256, 0, 0, 0]), [src, dst], [1]);
    await rt.sync();
    const report = await rt.profiler.report();
    rt.profiler.enabled = false;
    const copy = report.find((k) => k.label === 'util:copy_vec4');
    expect(copy?.calls).toBe(3);
    expect(copy!.ms).toBeGreaterThanOrEqual(0);
  });
});
