// A sequence's tokens, pages and progress while the scheduler runs it (nano-vllm's sequence.py).
// The scheduler never looks inside `params` (sampling settings belong to the engine). Its KV
// (token ids, block table, computed count) is a KvContext the sequence owns.
import { KvContext } from '../kv/kv-context.js';
import type { KvSession } from './session-registry.js';

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
  /** Prefix-cache salt: sequences with different salts never share a page (default ''). */
  cacheSalt?: string;
  /**
   * Another choice of the same prompt (n > 1): this sequence waits until that one has computed
   * the prompt, then shares its pages (the partial last page is copied on the first write).
   */
  sharePromptWith?: Sequence<P>;
  /** The workflow the call belongs to (metadata.workflow_id); none: its own one-call workflow. */
  workflowId?: string | null;
  /** The agent making the call inside its workflow (metadata.agent_id). */
  agentId?: string | null;
  /** Lower runs earlier (vLLM's convention); default 0. */
  priority?: number;
  /**
   * The session this request continues: it starts from the session's pages (as far as its tokens
   * agree) and, when it ends, the session holds its context (SessionRegistry).
   */
  session?: KvSession | null;
}

export class Sequence<P = unknown> {
  readonly id: number;
  readonly promptIds: readonly number[];
  readonly maxTokens: number;
  readonly stopIds: readonly number[];
  readonly params: P | undefined;
  /** The sequence's KV: its tokens (prompt then generated), block table and computed count. */
  readonly kv: KvContext;
  readonly generated: number[] = [];
  /** The choice whose prompt pages this one shares (sharePromptWith), until it has shared them. */
  leader: Sequence<P> | null;
  /**
   * Prompt tokens this sequence did not compute when it first started: taken from the prefix
   * cache or shared with its leader (null until it starts).
   */
  cachedTokens: number | null = null;
  readonly workflowId: string | null;
  readonly agentId: string | null;
  readonly priority: number;
  readonly session: KvSession | null;
  /** Tokens taken from the session's pages when the sequence last started (0: none). */
  sessionTokens = 0;
  status: SequenceStatus = 'waiting';
  finishReason: FinishReason | null = null;
  /** Order of arrival, set by Scheduler.add (lower is older). */
  arrival = -1;
  /** Clock time (the scheduler's clock, ms) when Scheduler.add queued it. */
  queuedAt = 0;
  /** How often this sequence has been preempted (its K/V dropped and recomputed). */
  preemptions = 0;
  /** Its prefix is being loaded from the context store: it waits (others run) until that is done. */
  restoring = false;

  constructor(init: SequenceInit<P>) {
    this.id = init.id;
    this.promptIds = [...init.promptIds];
    this.maxTokens = init.maxTokens;
    this.stopIds = [...(init.stopIds ?? [])];
    this.params = init.params;
    this.kv = new KvContext(init.promptIds, init.cacheSalt ?? '');
    this.leader = init.sharePromptWith ?? null;
    this.workflowId = init.workflowId ?? null;
    this.agentId = init.agentId ?? null;
    this.priority = init.priority ?? 0;
    this.session = init.session ?? null;
    if (this.session && this.session.salt !== this.kv.salt) throw new Error(`the session's cache salt differs from the sequence's`);
    if (!Number.isInteger(this.priority)) throw new Error(`priority must be an integer, got ${this.priority}`);
    if (this.leader && this.leader.promptIds.join() !== this.promptIds.join()) throw new Error('sharePromptWith: the prompts differ');
  }

  /** Prompt then generated tokens: every token whose K/V the sequence needs. */
  get tokens(): readonly number[] {
    return this.kv.tokens;
  }

  /** Tokens (from the start of `tokens`) whose K/V are in the cache. */
  get numComputed(): number {
    return this.kv.numComputed;
  }

  set numComputed(n: number) {
    this.kv.numComputed = n;
  }

  /** Page ids holding this sequence's K/V, in position order. */
  get blockTable(): number[] {
    return this.kv.blockTable;
  }

  set blockTable(pages: number[]) {
    this.kv.blockTable = pages;
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
    this.kv.tokens.push(id);
    this.generated.push(id);
  }
}
