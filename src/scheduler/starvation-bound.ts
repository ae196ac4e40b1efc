// How long a waiting request may be passed over before it goes first (the workflow policy's
// starvation bound). Least attained service keeps the most-served workflows waiting; a bound lets
// none wait forever. A fixed bound in milliseconds only suits one time scale: on a GPU a call
// queues for milliseconds, on SwiftShader under load for tens of seconds, where a 10 s bound marks
// every call starved and the policy falls back to arrival order. So by default the bound follows
// what queueing costs here: `factor` times the mean queue time over the last `window` calls that
// started (arrival to first start) and the calls still queued (their wait so far, so the bound
// sees a queue as it builds), never below `floorMs` nor above `capMs`. It is a slowdown bound: no
// call waits more than `factor` times what calls wait on average (Autellix likewise promotes a
// program by its waiting time relative to the work in the system, not by wall time). Under
// least attained service the most-served workflow's calls wait several times the mean, so the
// factor is large (8: in bench/agents-sim.ts no call of the benchmark workloads reaches it, while
// 4 marks the calls of a second burst starved and costs 0.60x -> 0.76x). A number given by the user is a
// fixed bound, as before.

import { RecentValues } from './recent-values.js';

export interface AdaptiveStarvationOptions {
  /** The bound is this many times the recent mean queue time (default 8). */
  factor?: number;
  /** Never below this (ms, default 10 000: the old fixed bound, which fits a GPU's queueing). */
  floorMs?: number;
  /** Never above this (ms, default 600 000): the hard guarantee. */
  capMs?: number;
  /** How many recent starts the mean covers (default 64). */
  window?: number;
}

export const ADAPTIVE_STARVATION_DEFAULTS = { factor: 8, floorMs: 10_000, capMs: 600_000, window: 64 } as const;

export class StarvationBound {
  readonly factor: number;
  readonly floorMs: number;
  readonly capMs: number;
  readonly window: number;
  private readonly waits: RecentValues;

  /** `fixedMs`: a fixed bound (what the user set); null: adaptive. */
  constructor(readonly fixedMs: number | null, options: AdaptiveStarvationOptions = {}) {
    this.factor = options.factor ?? ADAPTIVE_STARVATION_DEFAULTS.factor;
    this.floorMs = options.floorMs ?? ADAPTIVE_STARVATION_DEFAULTS.floorMs;
    this.capMs = options.capMs ?? ADAPTIVE_STARVATION_DEFAULTS.capMs;
    this.window = options.window ?? ADAPTIVE_STARVATION_DEFAULTS.window;
    if (fixedMs !== null && !(fixedMs >= 0)) throw new Error(`workflow policy: starvationMs must be a number of milliseconds >= 0 or 'adaptive', got ${fixedMs}`);
    if (!(this.factor > 0) || !Number.isFinite(this.factor)) throw new Error(`starvation bound: factor must be a positive number, got ${this.factor}`);
    if (!(this.floorMs >= 0) || !(this.capMs >= this.floorMs)) throw new Error(`starvation bound: need 0 <= floorMs <= capMs, got ${this.floorMs} and ${this.capMs}`);
    if (!Number.isInteger(this.window) || this.window < 1) throw new Error(`starvation bound: window must be a positive integer, got ${this.window}`);
    this.waits = new RecentValues(this.window);
  }

  get adaptive(): boolean {
    return this.fixedMs === null;
  }

  /** Records a call's queue time (arrival to its first start, ms). */
  observe(waitMs: number): void {
    if (waitMs >= 0) this.waits.add(waitMs);
  }

  /** Mean queue time of the recent starts (ms; 0 before any). */
  get meanWaitMs(): number {
    return this.waits.count ? this.waits.mean() : 0;
  }


  /**
   * The bound now (ms): a request queued longer than this is starved. `queuedMs`: how long each
   * call still queued for its first start has waited so far; they count beside the recent starts,
   * so the bound sees queueing as it builds, not only once the queued calls start.
   */
  currentMs(queuedMs: readonly number[] = []): number {
    if (this.fixedMs !== null) return this.fixedMs;
    const n = this.waits.count + queuedMs.length;
    const meanWait = n ? (this.waits.total + queuedMs.reduce((a, b) => a + b, 0)) / n : 0;
    return Math.min(this.capMs, Math.max(this.floorMs, this.factor * meanWait));
  }
}
