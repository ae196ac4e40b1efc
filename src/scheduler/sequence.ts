// A sequence's tokens, pages and progress while the scheduler runs it (nano-vllm's sequence.py).
// The scheduler never looks inside `params` (sampling settings belong to the engine).

export type SequenceStatus = 'waiting' | 'running' | 'preempted' | 'finished';
export type FinishReason = 'stop' | 'length' | 'abort';

export interface SequenceInit<P = unknown> {
  id: number;
  promptIds: readonly number[];
  /** Most tokens to generate (at least 1). */
  maxTokens: number;
  /** Token ids that end generation (not appended to the output). */
  stopIds?: readonly number[];
  /** Sampling parameters, opaque to the scheduler. */
  params?: P;
}

export class Sequence<P = unknown> {
  readonly id: number;
  readonly promptIds: readonly number[];
  readonly maxTokens: number;
  readonly stopIds: readonly number[];
  readonly params: P | undefined;
  /** Prompt then generated tokens: every token whose K/V the sequence needs. */
  readonly tokens: number[];
  readonly generated: number[] = [];
  /** Tokens (from the start of `tokens`) whose K/V are in the cache. */
  numComputed = 0;
  status: SequenceStatus = 'waiting';
  finishReason: FinishReason | null = null;
  /** Order of arrival, set by Scheduler.add (lower is older). */
  arrival = -1;
  /** Page ids holding this sequence's K/V, in position order. */
  blockTable: number[] = [];
  /** How often this sequence has been preempted (its K/V dropped and recomputed). */
  preemptions = 0;

  constructor(init: SequenceInit<P>) {
    this.id = init.id;
    this.promptIds = [...init.promptIds];
    this.maxTokens = init.maxTokens;
    this.stopIds = [...(init.stopIds ?? [])];
    this.params = init.params;
    this.tokens = [...init.promptIds];
  }

  get numPromptTokens(): number {
    return this.promptIds.length;
  }

  get numTokens(): number {
    return this.tokens.length;
  }

  /** Known tokens whose K/V are not in the cache yet (1 for a decoding sequence). */
  get numPending(): number {
    return this.tokens.length - this.numComputed;
  }

  get isFinished(): boolean {
    return this.status === 'finished';
  }

  /** Appends a sampled token (the scheduler's commit calls it). */
  append(id: number): void {
    this.tokens.push(id);
    this.generated.push(id);
  }
}
