import { describe, expect, it } from 'vitest';
import { getRuntime } from '../helpers/gpu.js';

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
