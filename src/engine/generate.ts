// Runs a set of requests to completion with the continuous-batching scheduler: every step is
// one Batch of decode tokens and prefill chunks, one forward pass, one read of sampled ids.
import type { KvCache } from '../kv/index.js';
import type { ForwardPass } from '../model/index.js';
import { KvManager, Scheduler, Sequence } from '../scheduler/index.js';

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
  /** Times the sequence was preempted (pages freed) and recomputed. */
  preemptions: number;
}

export interface GenerateOptions {
  /** Most tokens in one step (prefill chunks are cut to fit). */
  maxBatchTokens?: number;
  contextLength: number;
}

export async function generate(forward: ForwardPass, kv: KvCache, requests: GenerateRequest[], options: GenerateOptions): Promise<GenerateResult[]> {
  const scheduler = new Scheduler({
    kv: new KvManager(kv.pool, kv.pageSize),
    contextLength: options.contextLength,
    maxBatchTokens: options.maxBatchTokens,
  });
  const seqs = requests.map((r, id) => new Sequence({ id, promptIds: r.promptIds, maxTokens: r.maxTokens, stopIds: r.stopIds }));
  try {
    seqs.forEach((s) => scheduler.add(s));
    while (scheduler.hasWork) {
      const step = scheduler.schedule();
      // Nothing else holds pages here: a step that cannot be scheduled never will be.
      if (!step) throw new Error(`generate: no sequence fits the KV cache of ${kv.tokenCapacity} tokens`);
      const sampling = step.seqs.filter((s) => s.samples).map(({ seq }) => ({
        temperature: requests[seq.id].temperature ?? 0,
        seed: requests[seq.id].seed ?? 0,
        counter: seq.generated.length,
      }));
      const ids = await forward.sample(step.batch, kv, sampling);
      for (const { seq, tokenId } of scheduler.commit(step, Array.from(ids)).appended) requests[seq.id].onToken?.(tokenId);
    }
    return seqs.map((s) => ({ tokens: s.generated, finishReason: s.finishReason === 'stop' ? 'stop' : 'length', preemptions: s.preemptions }));
  } finally {
    for (const s of seqs) if (!s.isFinished) scheduler.abort(s.id);
  }
}
