// A step whose grammar masks are built while the GPU runs the forward pass: the forward pass is
// one submission, `prepare` runs after it, and the sampling (with the masks `prepare` filled) is a
// second one; the ids are those of the same step recorded as one submission.
import { afterAll, describe, expect, it } from 'vitest';
import { maskWords, type RowSampling } from '../../src/model/kernels/sampling.js';
import { loadShared, prefillBatch, type LoadedModel } from '../helpers/model.js';

function maskOf(vocab: number, allowed: number[]): Uint32Array {
  const mask = new Uint32Array(maskWords(vocab));
  for (const t of allowed) mask[t >>> 5] |= 1 << (t & 31);
  return mask;
}

describe('masks filled while the forward pass runs', () => {
  let m: LoadedModel;
  afterAll(() => m?.close());

  it('sample with prepare: two submissions, the masks prepare fills apply, ids as in one submission', async () => {
    m = await loadShared('wg-tolstoy-q8_0.gguf', 64);
    const rt = m.model.rt;
    const vocab = m.model.config.vocabSize;
    const tokens = m.model.tokenizer.encode('Prince Andrew looked at the old count');
    const pages = m.kv.pool.allocate(Math.ceil(tokens.length / m.kv.pageSize))!;
    try {
      // Two sampled rows: row 0 constrained, row 1 free (and sampled).
      const batch = prefillBatch(tokens, pages, m.kv.pageSize, [tokens.length - 3, tokens.length - 1]);
      const rows = (): RowSampling[] => [{ temperature: 0, seed: 1, counter: 0 }, { temperature: 0.9, seed: 2, counter: 0 }];
      const free = await m.forward.sample(batch, m.kv, rows());
      const allowed = [(free[0] + 1) % vocab, (free[0] + 7) % vocab];
      const mask = maskOf(vocab, allowed);
      const oneSubmission = await m.forward.sample(batch, m.kv, rows().map((r, i) => (i === 0 ? { ...r, mask } : r)));
      expect(allowed).toContain(oneSubmission[0]);

      const overlapped = rows();
      const before = rt.submissions;
      let preparedAfter = -1;
      const ids = await m.forward.sample(batch, m.kv, overlapped, async () => {
        preparedAfter = rt.submissions - before;
        overlapped[0].mask = mask;
      });
      expect(preparedAfter, 'the forward pass was submitted before prepare ran').toBe(1);
      expect(rt.submissions - before).toBe(2);
      expect([...ids]).toEqual([...oneSubmission]);
      expect(ids[1]).toBe(free[1]); // the free row is untouched by the other row's mask
    } finally {
      m.kv.pool.release(pages);
    }
  });
});
