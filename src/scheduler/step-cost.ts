// What a step costs on this device, learnt from the steps run so far: time ≈ fixedMs +
// perTokenMs × tokens, a least-squares fit over a window of recent steps. The scheduler uses it to
// decide whether one more prompt belongs in a step (see Scheduler, latency-aware packing): on a
// GPU a step's fixed cost (reading the weights) dwarfs a prompt's tokens, so prompts batch; on a
// CPU adapter each token costs about as much as the fixed part, so a second prompt in a step
// mostly delays the first one's first token.

export interface StepCost {
  fixedMs: number;
  perTokenMs: number;
}

export class StepCostModel {
  private readonly samples: { tokens: number; ms: number }[] = [];

  /** `window`: how many recent steps the fit uses; `minSamples`: how many it needs before it answers. */
  constructor(readonly window = 64, readonly minSamples = 8) {
    if (!Number.isInteger(window) || window < 2) throw new Error(`step cost: window must be an integer >= 2, got ${window}`);
    if (!Number.isInteger(minSamples) || minSamples < 2 || minSamples > window) throw new Error(`step cost: minSamples must be an integer in 2..${window}, got ${minSamples}`);
  }

  /** Records a step of `tokens` tokens that took `ms` milliseconds. */
  observe(tokens: number, ms: number): void {
    if (!(tokens >= 1) || !(ms >= 0) || !Number.isFinite(ms)) return;
    this.samples.push({ tokens, ms });
    if (this.samples.length > this.window) this.samples.shift();
  }

  /**
   * The fitted cost, or null until `minSamples` steps of at least two different sizes were seen.
   * Both terms are clamped at 0 (noise can tilt a fit below it).
   */
  estimate(): StepCost | null {
    const n = this.samples.length;
    if (n < this.minSamples) return null;
    let sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (const { tokens: x, ms: y } of this.samples) {
      sx += x;
      sy += y;
      sxx += x * x;
      sxy += x * y;
    }
    const varX = n * sxx - sx * sx;
    if (varX <= 0) return null;
    const perTokenMs = Math.max(0, (n * sxy - sx * sy) / varX);
    const fixedMs = Math.max(0, (sy - perTokenMs * sx) / n);
    return { fixedMs, perTokenMs };
  }
}
