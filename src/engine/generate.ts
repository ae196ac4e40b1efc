// Runs a set of prompts to completion together: every step is one Batch holding the prefill
// chunks of sequences still reading their prompt and one decode token of every other one.
// (The continuous-batching scheduler builds on the same pieces: Sequence, pages, Batch.)
import type { KvCache } from '../kv/index.js';
import type { Batch, ForwardPass } from '../model/index.js';

export interface GenerateRequest {
  promptIds: number[];
  maxTokens: number;
  /** 0 (default) is greedy; above 0, a draw from softmax(logits / temperature). */
  temperature?: number;
  /** Seed of the draws; the same seed gives the same tokens whatever else is batched. */
  seed?: number;
  /** Token ids that end generation (not included in the output). */
  stopIds?: number[];
  /** Called with every generated token as soon as it is sampled. */
  onToken?: (id: number) => void;
}

export interface GenerateResult {
  tokens: number[];
  finishReason: 'stop' | 'length';
}

/** A sequence's tokens and pages while it runs. */
class Sequence {
  readonly tokens: number[];
  readonly pages: number[] = [];
  /** Tokens whose K/V are in the cache. */
  computed = 0;
  readonly generated: number[] = [];
  finishReason: GenerateResult['finishReason'] | null = null;

  constructor(readonly request: GenerateRequest, readonly contextLimit: number) {
    this.tokens = [...request.promptIds];
  }

  get done(): boolean {
    return this.finishReason !== null;
  }
}

export interface GenerateOptions {
  /** Most tokens in one step (prefill chunks are cut to fit). */
  maxBatchTokens?: number;
  contextLength: number;
}

export async function generate(forward: ForwardPass, kv: KvCache, requests: GenerateRequest[], options: GenerateOptions): Promise<GenerateResult[]> {
  const seqs = requests.map((r) => {
    if (r.promptIds.length === 0) throw new Error('prompt has no tokens');
    if (r.promptIds.length >= options.contextLength) {
      throw new Error(`prompt of ${r.promptIds.length} tokens does not fit the context of ${options.contextLength}`);
    }
    return new Sequence(r, options.contextLength);
  });
  try {
    for (;;) {
      const active = seqs.filter((s) => !s.done);
      if (!active.length) break;
      const { batch, sampled } = buildBatch(active, kv, options.maxBatchTokens ?? 512);
      const ids = await forward.sample(batch, kv, sampled.map((seq) => ({
        temperature: seq.request.temperature ?? 0,
        seed: seq.request.seed ?? 0,
        counter: seq.generated.length,
      })));
      sampled.forEach((seq, i) => accept(seq, ids[i]));
    }
    return seqs.map((s) => ({ tokens: s.generated, finishReason: s.finishReason! }));
  } finally {
    for (const s of seqs) kv.pool.release(s.pages.splice(0));
  }
}

function accept(seq: Sequence, id: number): void {
  if (seq.request.stopIds?.includes(id)) {
    seq.finishReason = 'stop';
    return;
  }
  seq.generated.push(id);
  seq.tokens.push(id);
  seq.request.onToken?.(id);
  if (seq.generated.length >= seq.request.maxTokens || seq.tokens.length >= seq.contextLimit) seq.finishReason = 'length';
}

/** Takes each sequence's uncomputed tokens (up to the budget), allocating pages for them. */
function buildBatch(active: Sequence[], kv: KvCache, budget: number): { batch: Batch; sampled: Sequence[] } {
  const pageSize = kv.pageSize;
  const chosen: { seq: Sequence; count: number }[] = [];
  let used = 0;
  for (const seq of active) {
    const pending = seq.tokens.length - seq.computed;
    const count = Math.min(pending, budget - used);
    if (count <= 0) break;
    const needPages = Math.ceil((seq.computed + count) / pageSize) - seq.pages.length;
    if (needPages > 0) {
      const pages = kv.pool.allocate(needPages);
      if (!pages) {
        if (chosen.length) break;
        throw new Error(`KV cache is full: ${kv.pool.totalPages} pages of ${pageSize} tokens cannot hold this request`);
      }
      seq.pages.push(...pages);
    }
    chosen.push({ seq, count });
    used += count;
  }
  const maxBlocksPerSeq = Math.max(...chosen.map((c) => c.seq.pages.length));
  const n = chosen.length;
  const batch: Batch = {
    tokenIds: new Int32Array(used),
    positions: new Int32Array(used),
    seqStarts: new Int32Array(n + 1),
    contextLens: new Int32Array(n),
    blockTables: new Int32Array(n * maxBlocksPerSeq).fill(-1),
    maxBlocksPerSeq,
    slotMapping: new Int32Array(used),
    sampleRows: new Int32Array(0),
  };
  const sampleRows: number[] = [];
  const sampled: Sequence[] = [];
  let t = 0;
  chosen.forEach(({ seq, count }, i) => {
    batch.seqStarts[i] = t;
    for (let j = 0; j < count; j++, t++) {
      const pos = seq.computed + j;
      batch.tokenIds[t] = seq.tokens[pos];
      batch.positions[t] = pos;
      batch.slotMapping[t] = seq.pages[Math.floor(pos / pageSize)] * pageSize + (pos % pageSize);
    }
    seq.computed += count;
    batch.contextLens[i] = seq.computed;
    batch.blockTables.set(seq.pages, i * maxBlocksPerSeq);
    // Only a sequence whose chunk reaches its last known token produces a new token.
    if (seq.computed === seq.tokens.length) {
      sampleRows.push(t - 1);
      sampled.push(seq);
    }
  });
  batch.seqStarts[n] = t;
  batch.sampleRows = Int32Array.from(sampleRows);
  return { batch, sampled };
}
