// How long a finished call's pages stay pinned for its agent's next call (the workflow policy's
// retention time-to-live). The TTL has to cover the agent's tool: the time from a call's finish
// to the agent's next call arriving (once that call arrives, its pins hold until it starts, so
// the queue is not the TTL's business). A fixed TTL only suits one kind of tool: 10 s wastes
// pins on agents that call a function for 100 ms and never come back, and drops the context of
// an agent that waits a minute on a web search. So by default the TTL follows the gaps measured
// here: `margin` times the `percentile`-th percentile of the last `window` gaps, the workflow's
// own once it has `minGaps` of them, else the gaps of all workflows, never below `floorMs` nor
// above `capMs`; `fallbackMs` (the old fixed 10 s) before `minGaps` gaps are known anywhere.
// A high percentile rather than the mean: a pin that lapses just before the agent comes back
// costs its whole context, while a pin kept too long only loses to plain cached pages (pins are
// never refused to an allocation). A number given by the user is a fixed TTL, as before (0: no pins).

import { RecentValues } from './recent-values.js';

export interface AdaptiveTtlOptions {
  /** Which percentile of the measured gaps (0-100, default 90). */
  percentile?: number;
  /** The TTL is the percentile times this (default 1.5). */
  margin?: number;
  /** Never below this (ms, default 1000). */
  floorMs?: number;
  /** Never above this (ms, default 600 000). */
  capMs?: number;
  /** How many recent gaps a window keeps, per workflow and overall (default 64). */
  window?: number;
  /** Gaps a window needs before it is used (default 8: the top of 3 gaps underestimates a heavy tail). */
  minGaps?: number;
  /** The TTL before enough gaps are known (ms, default 10 000: the old fixed default). */
  fallbackMs?: number;
}

export const ADAPTIVE_TTL_DEFAULTS = { percentile: 90, margin: 1.5, floorMs: 1000, capMs: 600_000, window: 64, minGaps: 8, fallbackMs: 10_000 } as const;

/** Where a TTL came from: a fixed setting, the workflow's own gaps, every workflow's, or the fallback. */
export type TtlSource = 'fixed' | 'workflow' | 'global' | 'fallback';

/** The last `size` gaps between a call's finish and its agent's next call (ms; a negative one is ignored). */
export class GapWindow extends RecentValues {
  override add(gapMs: number): void {
    if (gapMs >= 0) super.add(gapMs);
  }
}

export class RetentionTtl {
  readonly percentile: number;
  readonly margin: number;
  readonly floorMs: number;
  readonly capMs: number;
  readonly window: number;
  readonly minGaps: number;
  readonly fallbackMs: number;
  /** The gaps of every workflow. */
  readonly global: GapWindow;

  /** `fixedMs`: a fixed TTL (what the user set; 0: nothing is kept); null: adaptive. */
  constructor(readonly fixedMs: number | null, options: AdaptiveTtlOptions = {}) {
    this.percentile = options.percentile ?? ADAPTIVE_TTL_DEFAULTS.percentile;
    this.margin = options.margin ?? ADAPTIVE_TTL_DEFAULTS.margin;
    this.floorMs = options.floorMs ?? ADAPTIVE_TTL_DEFAULTS.floorMs;
    this.capMs = options.capMs ?? ADAPTIVE_TTL_DEFAULTS.capMs;
    this.window = options.window ?? ADAPTIVE_TTL_DEFAULTS.window;
    this.minGaps = options.minGaps ?? ADAPTIVE_TTL_DEFAULTS.minGaps;
    this.fallbackMs = options.fallbackMs ?? ADAPTIVE_TTL_DEFAULTS.fallbackMs;
    if (fixedMs !== null && !(fixedMs >= 0)) throw new Error(`workflow policy: retentionTtlMs must be a number of milliseconds >= 0 or 'adaptive', got ${fixedMs}`);
    if (!(this.percentile >= 0 && this.percentile <= 100)) throw new Error(`retention TTL: percentile must be in 0..100, got ${this.percentile}`);
    if (!(this.margin > 0) || !Number.isFinite(this.margin)) throw new Error(`retention TTL: margin must be a positive number, got ${this.margin}`);
    if (!(this.floorMs >= 0) || !(this.capMs >= this.floorMs)) throw new Error(`retention TTL: need 0 <= floorMs <= capMs, got ${this.floorMs} and ${this.capMs}`);
    if (!Number.isInteger(this.window) || this.window < 1) throw new Error(`retention TTL: window must be a positive integer, got ${this.window}`);
    if (!Number.isInteger(this.minGaps) || this.minGaps < 1 || this.minGaps > this.window) throw new Error(`retention TTL: minGaps must be an integer in 1..window, got ${this.minGaps}`);
    if (!(this.fallbackMs >= 0)) throw new Error(`retention TTL: fallbackMs must be >= 0, got ${this.fallbackMs}`);
    this.global = new GapWindow(this.window);
  }

  get adaptive(): boolean {
    return this.fixedMs === null;
  }

  /** A window for one workflow's gaps. */
  newWindow(): GapWindow {
    return new GapWindow(this.window);
  }

  /** Records a gap (a call's finish to its agent's next call, ms), overall and in the workflow's window. */
  observe(gapMs: number, workflowGaps?: GapWindow): void {
    this.global.add(gapMs);
    workflowGaps?.add(gapMs);
  }

  /** Which gaps the TTL of a call of a workflow with these gaps follows now. */
  source(workflowGaps?: GapWindow): TtlSource {
    if (this.fixedMs !== null) return 'fixed';
    if (workflowGaps && workflowGaps.count >= this.minGaps) return 'workflow';
    return this.global.count >= this.minGaps ? 'global' : 'fallback';
  }

  /** The TTL (ms) for a call finishing now in a workflow with these gaps (none: the global TTL). */
  currentMs(workflowGaps?: GapWindow): number {
    const source = this.source(workflowGaps);
    if (source === 'fixed') return this.fixedMs!;
    if (source === 'fallback') return this.fallbackMs;
    const gaps = source === 'workflow' ? workflowGaps! : this.global;
    return Math.min(this.capMs, Math.max(this.floorMs, this.margin * gaps.percentile(this.percentile)));
  }
}
