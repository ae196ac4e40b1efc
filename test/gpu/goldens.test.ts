// The model against llama.cpp: for every shared model and every golden case, prompt tokens
// identical, greedy tokens identical up to llama.cpp's first near tie (top-2 within 1%), and
// top-5 probabilities close.
//
// Both kernel sets: the default 'fast' set must agree with llama.cpp up to its first near tie; the
// opt-in 'llama.cpp' set computes llama.cpp's arithmetic bit for bit and keeps a tighter bar.
//
// Teacher forcing, in llama.cpp's batches: one prefill of the prompt, then llama.cpp's greedy
// tokens one decode step at a time, gives our logits at every generated position. Our greedy
// output equals llama.cpp's up to the first position where our argmax differs (the inputs are
// identical until then), so that position is the divergence point. Free-running generation of all
// cases in one batch is checked on the shipped model and two others.
import { afterAll, describe, expect, it } from 'vitest';
import { golden, GOLDEN_MODELS, type GoldenCase } from '../helpers/shared.js';
import type { Numerics } from '../../src/model/index.js';
import { greedy, loadShared, probabilitiesStepwise, type LoadedModel } from '../helpers/model.js';

const N = 32;
/** Up to 9 cases of 32 decode steps on SwiftShader: past the default timeout on a busy machine. */
const CASES_TIMEOUT_MS = 600_000;
const FREE_RUNNING = new Set(['wg-tolstoy-q8_0.gguf', 'wg-llama-spm-f16.gguf', 'llama-2-tiny-random.gguf']);

/** Position of llama.cpp's first near tie (top-2 probabilities within 1%), or N. */
function firstNearTie(c: GoldenCase): number {
  const i = c.top_probs.findIndex(([a, b]) => b && a[1] - b[1] <= 0.01 * a[1]);
  return i < 0 ? N : i;
}

function argmax(p: Float32Array): number {
  let best = 0;
  for (let i = 1; i < p.length; i++) if (p[i] > p[best]) best = i;
  return best;
}

/**
 * Largest top-5 probability difference allowed. The forward pass computes what llama.cpp's x86
 * CPU build computes, bit for bit (tools/llamacpp-dump compares every tensor), so our
 * probabilities equal those of node-llama-cpp 3.22.1 run on this machine. The goldens were made
 * on another machine whose llama.cpp differs from that one by up to 5.2e-4 (spm-f32), 1.35e-3
 * (spm-f16) and 1.65e-2 (tolstoy-q8_0, quantized): the CPU variant node-llama-cpp loads depends on
 * the CPU. These bounds sit just above that measured floor; F16 exceeds the 1e-3 asked for by the
 * same margin llama.cpp itself does.
 */
function tolerance(file: string, numerics: Numerics): number {
  if (numerics === 'fast') return FAST_TOLERANCE;
  if (/f32|tiny-random/.test(file)) return 1e-3;
  if (/f16/.test(file)) return 1.5e-3;
  return 2e-2;
}

/**
 * The fast set computes in f32 where llama.cpp rounds activations to f16 / Q8_K grids and keeps an
 * f16 attention accumulator, so its probabilities differ from llama.cpp's by more than the CPU
 * variants differ among themselves; this bounds that difference.
 */
const FAST_TOLERANCE = 5e-2;

/**
 * Models on which the fast set must also agree with llama.cpp up to its near tie. On the random-
 * weight quantized models llama.cpp's own f16 attention accumulator moves top-2 gaps by up to
 * ~12% (reference-forward.test.ts measures the fast set against float64 math there instead:
 * the same greedy token wherever exact math has no near tie), so their agreement is reported.
 */
const FAST_NEAR_TIE_MODELS = new Set(['llama-2-tiny-random.gguf', 'wg-llama-spm-f32.gguf', 'wg-llama-spm-f16.gguf', 'wg-tolstoy-f32.gguf', 'wg-tolstoy-q8_0.gguf']);

const report: string[] = ['kernel set | model | case | greedy match | llama.cpp near tie | all 32 | max |Δp| top-5'];
afterAll(() => console.log(report.join('\n')));

const RUNS = GOLDEN_MODELS.flatMap((file) => (['fast', 'llama.cpp'] as const).map((numerics) => [file, numerics] as const));

describe.each(RUNS)('%s against llama.cpp, %s kernel set', (file, numerics) => {
  let m: LoadedModel;
  const g = golden(file);
  afterAll(() => m?.close());

  it('tokenizes every case exactly like llama.cpp', async () => {
    m = await loadShared(file, 512, numerics);
    for (const c of g.cases) {
      expect(m.model.tokenizer.encode(c.prompt, { addBos: c.add_bos, parseSpecial: c.parse_special }), c.prompt).toEqual(c.prompt_tokens);
    }
  });

  it('agrees with llama.cpp greedy tokens and top-5 probabilities', async () => {
    const failures: string[] = [];
    let fullMatches = 0;
    let worstModel = 0;
    for (const [i, c] of g.cases.entries()) {
      const probs = await probabilitiesStepwise(m, c.prompt_tokens, c.greedy_tokens.slice(0, N - 1));
      const diverged = probs.findIndex((p, pos) => argmax(p) !== c.greedy_tokens[pos]);
      const matched = diverged < 0 ? N : diverged;
      const tie = firstNearTie(c);
      let worst = 0;
      c.top_probs.forEach((top, pos) => {
        for (const [id, p] of top) worst = Math.max(worst, Math.abs(probs[pos][id] - p));
      });
      worstModel = Math.max(worstModel, worst);
      if (matched === N) fullMatches++;
      const gap = matched < N && c.top_probs[matched][1] ? (c.top_probs[matched][0][1] - c.top_probs[matched][1][1]) / c.top_probs[matched][0][1] : 1;
      if (matched < tie) failures.push(`case ${i} ${JSON.stringify(c.prompt.slice(0, 24))}: diverged at ${matched} (llama.cpp top-2 gap ${(gap * 100).toFixed(2)}%), llama.cpp near tie at ${tie}`);
      report.push(`${numerics} | ${file} | ${i} | ${matched}/${N} | ${tie} | ${matched === N ? 'yes' : 'no'} | ${worst.toExponential(2)}`);
    }
    report.push(`${numerics} | ${file}: ${fullMatches}/${g.cases.length} cases with all ${N} tokens identical, ` +
      `${g.cases.length - failures.length}/${g.cases.length} up to llama.cpp's near tie, largest |Δp| ${worstModel.toExponential(2)}`);
    // Cases without a near tie in llama.cpp's run must therefore match all 32 tokens.
    if (numerics === 'llama.cpp' || FAST_NEAR_TIE_MODELS.has(file)) {
      expect(failures, `${file}: cases diverging before llama.cpp's near tie`).toEqual([]);
    }
    expect(worstModel, `${file}: largest top-5 probability difference`).toBeLessThan(tolerance(file, numerics));
  }, CASES_TIMEOUT_MS);

  it.runIf(FREE_RUNNING.has(file) && numerics === 'fast')('generates the same greedy tokens free-running, all cases batched', async () => {
    const outputs = await greedy(m, g.cases.map((c) => c.prompt_tokens), N);
    const agreeing = g.cases.filter((c, i) => {
      const tie = firstNearTie(c);
      return outputs[i].slice(0, tie).every((t, j) => t === c.greedy_tokens[j]);
    }).length;
    expect(agreeing, `${file}: free-running cases agreeing up to the near tie`).toBe(g.cases.length);
  });
});
