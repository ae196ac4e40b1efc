// Gumbel-max temperature sampling on the GPU against its CPU reference, and against softmax.
import { describe, expect, it } from 'vitest';
import { argmax } from '../../src/model/kernels/sample.js';
import { gumbelNoiseRef, packRowSampling, perturbLogits, type RowSampling } from '../../src/model/kernels/sampling.js';
import { getRuntime, randomF32 } from '../helpers/gpu.js';

async function sampleOnGpu(logits: Float32Array, rows: RowSampling[], vocab: number): Promise<Int32Array> {
  const rt = await getRuntime();
  const l = rt.buffers.createWith('logits', logits);
  const p = rt.buffers.createWith('rows', packRowSampling(rows));
  const ids = rt.buffers.create('ids', rows.length * 4);
  perturbLogits(rt, l, p, rows.length, vocab);
  argmax(rt, l, ids, rows.length, vocab);
  await rt.sync();
  const out = await rt.buffers.readI32(ids, 0, rows.length);
  for (const b of [l, p, ids]) rt.buffers.destroy(b);
  return out;
}

function sampleOnCpu(logits: Float32Array, r: RowSampling, row: number, vocab: number): number {
  let best = 0;
  let bestValue = -Infinity;
  for (let i = 0; i < vocab; i++) {
    const x = logits[row * vocab + i];
    const v = r.temperature > 0 ? x / r.temperature + gumbelNoiseRef(r.seed, r.counter, i) : x;
    if (v > bestValue) [best, bestValue] = [i, v];
  }
  return best;
}

describe('temperature sampling (Gumbel-max)', () => {
  it('draws the same token as the CPU reference for every row, greedy rows untouched', async () => {
    const vocab = 3000;
    const rows: RowSampling[] = [
      { temperature: 0, seed: 1, counter: 0 },
      { temperature: 0.7, seed: 42, counter: 3 },
      { temperature: 1.5, seed: 42, counter: 4 },
      { temperature: 1, seed: 7, counter: 0 },
    ];
    const logits = randomF32(rows.length * vocab, 11, 4);
    const gpu = await sampleOnGpu(logits, rows, vocab);
    expect(Array.from(gpu)).toEqual(rows.map((r, i) => sampleOnCpu(logits, r, i, vocab)));
  });

  it('samples from softmax(logits / T): frequencies over 4000 draws', async () => {
    const vocab = 4;
    const logits = Float32Array.from([1, 0, -1, 2]);
    const temperature = 0.8;
    const draws = 4000;
    const rows: RowSampling[] = Array.from({ length: draws }, (_, counter) => ({ temperature, seed: 123, counter }));
    const tiled = new Float32Array(draws * vocab);
    for (let r = 0; r < draws; r++) tiled.set(logits, r * vocab);
    const ids = await sampleOnGpu(tiled, rows, vocab);
    const counts = new Array(vocab).fill(0);
    for (const id of ids) counts[id]++;
    const z = logits.reduce((a, x) => a + Math.exp(x / temperature), 0);
    logits.forEach((x, i) => {
      const p = Math.exp(x / temperature) / z;
      const sigma = Math.sqrt((p * (1 - p)) / draws);
      expect(Math.abs(counts[i] / draws - p), `token ${i}`).toBeLessThan(5 * sigma);
    });
  });
});
