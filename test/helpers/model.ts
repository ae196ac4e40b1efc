// Loads shared test models onto the test file's GPU runtime and runs prompts through them.
import { generate, type GenerateRequest } from '../../src/engine/generate.js';
import { KvCache } from '../../src/kv/index.js';
import { ForwardPass, Model, type Batch, type Numerics } from '../../src/model/index.js';
import { getRuntime } from './gpu.js';
import { modelPath } from './shared.js';

export interface LoadedModel {
  model: Model;
  forward: ForwardPass;
  kv: KvCache;
  close(): void;
}

export async function loadShared(file: string, kvPages = 512, numerics: Numerics = 'fast'): Promise<LoadedModel> {
  const rt = await getRuntime();
  const model = await Model.load(rt, modelPath(file));
  const forward = new ForwardPass(model, { numerics });
  const kv = KvCache.create(rt, model.config, { maxPages: kvPages, memoryBytes: 1 << 30, format: 'f16' });
  return {
    model,
    forward,
    kv,
    close() {
      forward.destroy();
      kv.destroy();
      model.destroy();
    },
  };
}

export async function greedy(m: LoadedModel, prompts: number[][], maxTokens: number): Promise<number[][]> {
  const requests: GenerateRequest[] = prompts.map((promptIds) => ({ promptIds, maxTokens }));
  const results = await generate(m.forward, m.kv, requests, { contextLength: m.model.config.contextLength });
  return results.map((r) => r.tokens);
}

/**
 * Next-token probabilities after the prompt and after each forced token, computed in the batches
 * llama.cpp's goldens were made with: one prefill of the prompt, then one decode step per token.
 */
export async function probabilitiesStepwise(m: LoadedModel, prompt: number[], forced: number[]): Promise<Float32Array[]> {
  const pageSize = m.kv.pageSize;
  const total = prompt.length + forced.length;
  const pages = m.kv.pool.allocate(Math.ceil(total / pageSize));
  if (!pages) throw new Error('KV cache too small for the test');
  const vocab = m.model.config.vocabSize;
  try {
    const probs = [softmax((await m.forward.logits(prefillBatch(prompt, pages, pageSize, [prompt.length - 1]), m.kv)).subarray(0, vocab))];
    for (const [i, token] of forced.entries()) {
      const position = prompt.length + i;
      const batch: Batch = {
        tokenIds: Int32Array.from([token]),
        positions: Int32Array.from([position]),
        seqStarts: Int32Array.from([0, 1]),
        contextLens: Int32Array.from([position + 1]),
        blockTables: Int32Array.from(pages),
        maxBlocksPerSeq: pages.length,
        slotMapping: Int32Array.from([pages[Math.floor(position / pageSize)] * pageSize + (position % pageSize)]),
        sampleRows: Int32Array.from([0]),
      };
      probs.push(softmax((await m.forward.logits(batch, m.kv)).subarray(0, vocab)));
    }
    return probs;
  } finally {
    m.kv.pool.release(pages);
  }
}

/** One sequence prefilled from position 0 into `pages`, with logits for `sampleRows`. */
export function prefillBatch(tokens: number[], pages: number[], pageSize: number, sampleRows: number[]): Batch {
  return {
    tokenIds: Int32Array.from(tokens),
    positions: Int32Array.from(tokens, (_, i) => i),
    seqStarts: Int32Array.from([0, tokens.length]),
    contextLens: Int32Array.from([tokens.length]),
    blockTables: Int32Array.from(pages),
    maxBlocksPerSeq: pages.length,
    slotMapping: Int32Array.from(tokens, (_, i) => pages[Math.floor(i / pageSize)] * pageSize + (i % pageSize)),
    sampleRows: Int32Array.from(sampleRows),
  };
}

export function softmax(logits: Float32Array): Float32Array {
  let max = -Infinity;
  for (const v of logits) max = Math.max(max, v);
  const out = new Float32Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += out[i] = Math.exp(logits[i] - max);
  for (let i = 0; i < out.length; i++) out[i] /= sum;
  return out;
}
