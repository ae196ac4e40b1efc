// Per-agent and per-workflow figures of finished calls (calls, tokens, queue time, TTFT,
// inter-token latency, preemptions), and each workflow's completion time once it ends. Label
// cardinality is bounded: the most recently active `keep` workflows have their own entries; older
// ones, and a workflow's earlier run when its id is used again after it ended, fold into one
// '_other' entry. Calls without a workflow are counted under '_none'. So the figures of all
// entries always add up to the system totals.
import type { SeqTimings } from './engine-core.js';

export const OTHER = '_other';
export const NONE = '_none';

export interface CallFigures {
  calls: number;
  promptTokens: number;
  cachedTokens: number;
  generatedTokens: number;
  preemptions: number;
  /** Sum over calls of arrival to first scheduled step, ms. */
  queueMsSum: number;
  /** Sum over calls that produced a token of their time to first token, ms (count: ttftCount). */
  ttftMsSum: number;
  ttftCount: number;
  /** Sum of the gaps between a call's consecutive tokens, ms (count: itlCount tokens). */
  itlMsSum: number;
  itlCount: number;
}

export interface AgentFigures extends CallFigures {
  agentId: string;
  /** KV pages kept for the agent's next call now (workflow policy; 0 under fcfs); a page kept for two agents counts for each. */
  retainedPages: number;
}

export interface WorkflowFigures extends CallFigures {
  workflowId: string;
  agents: AgentFigures[];
  retainedPages: number;
  /** performance.now() of the first call's arrival and of the last finish (0 before any). */
  firstArrivalAt: number;
  lastFinishAt: number;
  /** First arrival to last finish, ms, once the workflow has ended; null while open. */
  completionMs: number | null;
}

export type RetainedPagesOf = (workflowId: string, agentId: string | null) => number;

const zero = (): CallFigures => ({ calls: 0, promptTokens: 0, cachedTokens: 0, generatedTokens: 0, preemptions: 0, queueMsSum: 0, ttftMsSum: 0, ttftCount: 0, itlMsSum: 0, itlCount: 0 });

function add(into: CallFigures, from: CallFigures): void {
  for (const k of Object.keys(into) as (keyof CallFigures)[]) into[k] += from[k];
}

function figuresOf(t: SeqTimings): CallFigures {
  const f = zero();
  f.calls = 1;
  f.promptTokens = t.promptTokens;
  f.cachedTokens = t.cachedTokens;
  f.generatedTokens = t.generatedTokens;
  f.preemptions = t.preemptions;
  f.queueMsSum = t.scheduledAt ? t.scheduledAt - t.arrivedAt : t.finishedAt - t.arrivedAt;
  if (t.firstTokenAt) {
    f.ttftMsSum = t.firstTokenAt - t.arrivedAt;
    f.ttftCount = 1;
    if (t.generatedTokens > 1) {
      f.itlMsSum = t.finishedAt - t.firstTokenAt;
      f.itlCount = t.generatedTokens - 1;
    }
  }
  return f;
}

class WorkflowEntry {
  readonly totals = zero();
  readonly agents = new Map<string, CallFigures>();
  firstArrivalAt = 0;
  lastFinishAt = 0;
  endedAt: number | null = null;
  constructor(readonly id: string) {}

  record(agentId: string, f: CallFigures, arrivedAt: number, finishedAt: number): void {
    add(this.totals, f);
    let a = this.agents.get(agentId);
    if (!a) this.agents.set(agentId, (a = zero()));
    add(a, f);
    if (!this.firstArrivalAt || arrivedAt < this.firstArrivalAt) this.firstArrivalAt = arrivedAt;
    this.lastFinishAt = Math.max(this.lastFinishAt, finishedAt);
  }

  absorb(other: WorkflowEntry): void {
    for (const [agentId, f] of other.agents) this.record(agentId === NONE ? NONE : OTHER, f, other.firstArrivalAt || performance.now(), other.lastFinishAt);
  }
}

export class WorkflowMetrics {
  /** Named workflows, least recently active first (a Map iterates in insertion order). */
  private readonly entries = new Map<string, WorkflowEntry>();
  private readonly other = new WorkflowEntry(OTHER);
  private readonly none = new WorkflowEntry(NONE);
  /** Completion times of ended workflows, ms (last 256), for means. */
  private readonly completions: number[] = [];

  constructor(readonly keep = 32) {
    if (!Number.isInteger(keep) || keep < 1) throw new Error(`metrics: the workflows kept must be a positive integer, got ${keep}`);
  }

  recordFinished(t: SeqTimings): void {
    const f = figuresOf(t);
    if (t.workflowId === null) {
      this.none.record(NONE, f, t.arrivedAt, t.finishedAt);
      return;
    }
    let entry = this.entries.get(t.workflowId);
    if (entry?.endedAt !== null && entry !== undefined) {
      // Its id is used again after it ended: a new run; the old one's figures fold into _other.
      this.other.absorb(entry);
      entry = undefined;
    }
    this.entries.delete(t.workflowId);
    this.entries.set(t.workflowId, entry ?? new WorkflowEntry(t.workflowId));
    this.entries.get(t.workflowId)!.record(t.agentId ?? NONE, f, t.arrivedAt, t.finishedAt);
    while (this.entries.size > this.keep) {
      const [oldest] = this.entries.values();
      this.entries.delete(oldest.id);
      this.other.absorb(oldest);
    }
  }

  /** Marks a workflow ended (its completion time is fixed); false if it has no finished call. */
  end(workflowId: string, at = performance.now()): boolean {
    const entry = this.entries.get(workflowId);
    if (!entry || entry.endedAt !== null) return false;
    entry.endedAt = at;
    this.completions.push(entry.lastFinishAt - entry.firstArrivalAt);
    if (this.completions.length > 256) this.completions.shift();
    return true;
  }

  /** Whether a workflow has figures and has not ended. */
  isOpen(workflowId: string): boolean {
    return this.entries.get(workflowId)?.endedAt === null;
  }

  /** Mean completion time of the workflows ended lately (ms), and how many. */
  completionSummary(): { ended: number; meanMs: number } {
    const n = this.completions.length;
    return { ended: n, meanMs: n ? this.completions.reduce((a, b) => a + b, 0) / n : 0 };
  }

  /** Every entry: named workflows (least recently active first), then _other and _none when they have calls. */
  snapshot(retained: RetainedPagesOf = () => 0): WorkflowFigures[] {
    const out: WorkflowFigures[] = [];
    for (const e of [...this.entries.values(), this.other, this.none]) {
      if (!e.totals.calls) continue;
      const named = e !== this.other && e !== this.none;
      const agents = [...e.agents].map(([agentId, f]) => ({ ...f, agentId, retainedPages: named ? retained(e.id, agentId === NONE ? null : agentId) : 0 }));
      out.push({
        ...e.totals,
        workflowId: e.id,
        agents,
        retainedPages: agents.reduce((s, a) => s + a.retainedPages, 0),
        firstArrivalAt: e.firstArrivalAt,
        lastFinishAt: e.lastFinishAt,
        completionMs: named && e.endedAt !== null ? e.lastFinishAt - e.firstArrivalAt : null,
      });
    }
    return out;
  }
}
