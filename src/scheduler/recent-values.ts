// The last `size` values of a measurement (queue gaps, context growth, agents' call counts): the
// windows the workflow policy's adaptive estimators follow.

export class RecentValues {
  private readonly values: number[] = [];
  private sum = 0;

  constructor(readonly size: number) {}

  /** Adds a value (a non-finite one is ignored); the oldest goes once there are `size`. */
  add(value: number): void {
    if (!Number.isFinite(value)) return;
    this.values.push(value);
    this.sum += value;
    if (this.values.length > this.size) this.sum -= this.values.shift()!;
  }

  get count(): number {
    return this.values.length;
  }

  /** Their sum (kept as they come and go). */
  get total(): number {
    return this.sum;
  }

  /** The values, oldest first. */
  all(): readonly number[] {
    return this.values;
  }

  /** NaN when empty. */
  mean(): number {
    return this.sum / this.values.length;
  }

  /** The p-th percentile (nearest rank, p in 0..100); NaN when empty. */
  percentile(p: number): number {
    if (!this.values.length) return NaN;
    const sorted = [...this.values].sort((a, b) => a - b);
    return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)];
  }
}
