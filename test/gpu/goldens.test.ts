// The model against llama.cpp: for every shared model and every golden case, prompt tokens
// identical, greedy tokens identical up to llama.cpp's first near tie (top-2 within 1%), and
// top-5 probabilities close (teacher forced on llama.cpp's tokens).
import { afterAll, describe, expect, it } from 'vitest';
import { golden, GOLDEN_MODELS, type GoldenCase } from '../helpers/shared.js';
import { greedy, loadShared, probabilitiesAt, type LoadedModel } from '../helpers/model.js';

/** Position of llama.cpp's first near tie (top-2 probabilities within 1%), or the length. */
function firstNearTie(c: GoldenCase): number {
  const i = c.top_probs.findIndex(([a, b]) => b && (a[1] - b[1]) <= 0.01 * a[1]);
  return i < 0 ? c.greedy_tokens.length : i;
}

function isExact(file: string): boolean {
  return /f32|f16|tiny-random/.test(file);
}

const report: string[] = [];
afterAll(() => console.log(['model | case | greedy match | first near tie | all 32 | max |Δp| top-5', ...report].join('\n')));

describe.each(GOLDEN_MODELS)('%s against llama.cpp', (file) => {
  let m: LoadedModel;
  const g = golden(file);
  afterAll(() => m?.close());

  it('tokenizes every case exactly like llama.cpp', async () => {
    m = await loadShared(file);
    for (const c of g.cases) {
      expect(m.model.tokenizer.encode(c.prompt, { addBos: c.add_bos, parseSpecial: c.parse_special }), c.prompt).toEqual(c.prompt_tokens);
    }
  });

  it('generates llama.cpp greedy tokens (all cases batched together) and its top-5 probabilities', async () => {
    const outputs = await greedy(m, g.cases.map((c) => c.prompt_tokens), 32);
    let fullMatches = 0;
    let worstModel = 0;
    for (const [i, c] of g.cases.entries()) {
      const tie = firstNearTie(c);
      const ours = outputs[i];
      const agree = ours.findIndex((t, j) => t !== c.greedy_tokens[j]);
      const matched = agree < 0 ? ours.length : agree;
      if (matched === 32) fullMatches++;
      expect(matched, `${file} case ${i} (${JSON.stringify(c.prompt.slice(0, 30))}): diverged at ${matched}, near tie at ${tie}`).toBeGreaterThanOrEqual(Math.min(tie, 32));

      const probs = await probabilitiesAt(m, [...c.prompt_tokens, ...c.greedy_tokens.slice(0, 31)], 32);
      let worst = 0;
      c.top_probs.forEach((top, pos) => {
        for (const [id, p] of top) worst = Math.max(worst, Math.abs(probs[pos][id] - p));
      });
      worstModel = Math.max(worstModel, worst);
      report.push(`${file} | ${i} | ${matched}/32 | ${tie} | ${matched === 32 ? 'yes' : 'no'} | ${worst.toExponential(2)}`);
    }
    // llama.cpp rounds activations to 8 bits for quantized weights; exact types must agree closely.
    expect(worstModel, `${file}: largest top-5 probability difference`).toBeLessThan(isExact(file) ? 1e-3 : 2e-2);
    expect(fullMatches, `${file}: cases with all 32 tokens identical`).toBeGreaterThanOrEqual(Math.ceil(g.cases.length / 2));
  });
});
