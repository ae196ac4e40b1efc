// Batch invariance of the default (fast) kernel set, bitwise on logits, on every shared model:
// a sequence's logits at a position are the same bits whether its tokens arrive as one prompt,
// in chunks of 1, 3 or 16 tokens, or token by token, and whatever else shares the step: other
// sequences' prefill chunks and decode rows, from 2 up to 16 sequences in a step.
//
// The reference run prefills the target's whole sequence (prompt + llama.cpp's greedy tokens) in
// one step with a logits row at every position. Each variant then feeds the same tokens in its
// chunking beside batch mates, and every logits row it produces for the target must equal the
// reference's row at that position, bit for bit.
import { afterAll, describe, expect, it } from 'vitest';
import type { Batch } from '../../src/model/index.js';
import { loadShared, type LoadedModel } from '../helpers/model.js';
import { golden, GOLDEN_MODELS } from '../helpers/shared.js';
import { getRuntime, rng, useShapes } from '../helpers/gpu.js';

/** A sequence being fed: its tokens, its pages, and how many are in the KV cache. */
interface Feed {
  tokens: number[];
  pages: number[];
  done: number;
}

interface Variant {
  name: string;
  /** Tokens of the target per step. */
  chunk: number;
  /** Batch mates beside the target (0: alone). */
  mates: number;
}

const VARIANTS: Variant[] = [
  { name: 'token by token, alone', chunk: 1, mates: 0 },
  { name: 'chunks of 3 beside 1 mate', chunk: 3, mates: 1 },
  { name: 'chunks of 16 beside 7 mates', chunk: 16, mates: 7 },
  { name: 'token by token beside 15 mates', chunk: 1, mates: 15 },
  { name: 'whole sequence beside 4 mates', chunk: 1 << 30, mates: 4 },
];

/** One step's Batch: for each feed, `counts[i]` more tokens, with a logits row at the last of each. */
function stepBatch(feeds: Feed[], counts: number[], pageSize: number): Batch {
  const tokenIds: number[] = [], positions: number[] = [], starts = [0], ctx: number[] = [], slots: number[] = [], samples: number[] = [];
  const maxBlocks = Math.max(...feeds.map((f) => f.pages.length));
  const tables = new Int32Array(feeds.length * maxBlocks).fill(-1);
  feeds.forEach((f, i) => {
    for (let p = f.done; p < f.done + counts[i]; p++) {
      tokenIds.push(f.tokens[p]);
      positions.push(p);
      slots.push(f.pages[Math.floor(p / pageSize)] * pageSize + (p % pageSize));
    }
    starts.push(tokenIds.length);
    ctx.push(f.done + counts[i]);
    samples.push(tokenIds.length - 1);
    tables.set(f.pages, i * maxBlocks);
  });
  return {
    tokenIds: Int32Array.from(tokenIds), positions: Int32Array.from(positions), seqStarts: Int32Array.from(starts),
    contextLens: Int32Array.from(ctx), blockTables: tables, maxBlocksPerSeq: maxBlocks,
    slotMapping: Int32Array.from(slots), sampleRows: Int32Array.from(samples),
  };
}

function newFeed(m: LoadedModel, tokens: number[]): Feed {
  const pages = m.kv.pool.allocate(Math.ceil(tokens.length / m.kv.pageSize));
  if (!pages) throw new Error('KV cache too small for the test');
  return { tokens, pages, done: 0 };
}

/** Logits of the target at every position, from one step over its whole sequence. */
async function referenceRows(m: LoadedModel, tokens: number[]): Promise<Float32Array[]> {
  const feed = newFeed(m, tokens);
  const vocab = m.model.config.vocabSize;
  try {
    const batch = stepBatch([feed], [tokens.length], m.kv.pageSize);
    batch.sampleRows = Int32Array.from(tokens, (_, i) => i);
    const logits = await m.forward.logits(batch, m.kv);
    return tokens.map((_, i) => logits.slice(i * vocab, (i + 1) * vocab));
  } finally {
    m.kv.pool.release(feed.pages);
  }
}

/**
 * Feeds the target in chunks beside `mates` sequences (random tokens; each mate starts with a
 * prefill chunk of its own length, then decodes one token a step), and checks every target row.
 */
async function checkVariant(m: LoadedModel, tokens: number[], want: Float32Array[], v: Variant, seed: number): Promise<number> {
  const vocab = m.model.config.vocabSize;
  const r = rng(seed);
  const target = newFeed(m, tokens);
  const mates = Array.from({ length: v.mates }, (_, i) => {
    const len = 4 + Math.floor(r() * 40);
    return newFeed(m, Array.from({ length: len }, () => 3 + Math.floor(r() * (vocab - 3))));
  });
  const mateChunks = mates.map((_, i) => 1 + ((i * 7) % 13));
  let checked = 0;
  try {
    while (target.done < tokens.length) {
      const active = [target, ...mates.filter((f) => f.done < f.tokens.length)];
      const counts = active.map((f, i) => Math.min(i === 0 ? v.chunk : f.done === 0 ? mateChunks[i - 1] : 1, f.tokens.length - f.done));
      // Mates before and after the target in the batch, so its rows move around.
      const order = active.map((_, i) => i).sort((a, b) => ((a * 5 + target.done) % 3) - ((b * 5 + target.done) % 3));
      const feeds = order.map((i) => active[i]);
      const batch = stepBatch(feeds, order.map((i) => counts[i]), m.kv.pageSize);
      const logits = await m.forward.logits(batch, m.kv);
      const row = order.indexOf(0);
      const position = target.done + counts[0] - 1;
      const got = logits.subarray(row * vocab, (row + 1) * vocab);
      for (let t = 0; t < vocab; t++) {
        if (!Object.is(got[t], want[position][t])) {
          expect.fail(`${v.name}: position ${position}, token ${t}: ${got[t]} in a step of ${feeds.length} sequences, ${want[position][t]} alone`);
        }
      }
      checked++;
      feeds.forEach((f, i) => (f.done += counts[order[i]]));
    }
  } finally {
    m.kv.pool.release(target.pages);
    for (const f of mates) m.kv.pool.release(f.pages);
  }
  return checked;
}

// On SwiftShader the fast set runs its CPU-adapter shapes, where prompt rows take the row-tiled
// GEMV. The GPU shapes (prompt rows through the tiled GEMM, split GEMV lanes) are checked too, on
// one model per matmul family: float weights, Q8_0 / Q4_0, and Q4_K / Q6_K.
const CASES = [
  ...GOLDEN_MODELS.map((file) => ({ file, shapes: 'CPU-adapter' as const })),
  ...['wg-llama-spm-f16.gguf', 'wg-llama-spm-q4_0.gguf', 'wg-llama-spm-q4_k_m.gguf'].map((file) => ({ file, shapes: 'GPU' as const })),
];

describe.each(CASES)('$file, $shapes shapes: logits are bitwise batch invariant (fast kernel set)', ({ file, shapes }) => {
  let m: LoadedModel;
  afterAll(() => m?.close());

  it('alone, chunked 1 / 3 / 16 / whole, beside 1 to 15 other sequences', async () => {
    m = await loadShared(file, 1024);
    useShapes(await getRuntime(), shapes === 'CPU-adapter');
    expect(m.forward.numerics).toBe('fast');
    const c = golden(file).cases[0];
    const tokens = [...c.prompt_tokens, ...c.greedy_tokens.slice(0, 12)];
    const want = await referenceRows(m, tokens);
    let seed = 1;
    for (const v of VARIANTS) {
      const checked = await checkVariant(m, tokens, want, v, seed++);
      expect(checked, v.name).toBeGreaterThan(0);
    }
    m.kv.pool.checkInvariants();
    expect(m.kv.pool.freePages).toBe(m.kv.pool.totalPages);
  });
});
