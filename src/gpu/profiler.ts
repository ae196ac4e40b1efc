// Per-kernel GPU time through timestamp queries, when the adapter has 'timestamp-query'.
// Enabled, every dispatch gets its own compute pass with begin/end timestamps.
import { BufferUsage, type BufferManager } from './buffers.js';
import type { GpuDevice } from './device.js';

const MAX_QUERIES = 4096;

export interface KernelTime {
  label: string;
  calls: number;
  ms: number;
}

export class Profiler {
  enabled = false;
  private querySet: GPUQuerySet | null = null;
  private resolveBuffer: GPUBuffer | null = null;
  private labels: string[] = [];
  private pending: Promise<void>[] = [];
  private readonly totals = new Map<string, KernelTime>();

  constructor(private readonly gpu: GpuDevice, private readonly buffers: BufferManager) {}

  get available(): boolean {
    return this.gpu.features.timestampQuery;
  }

  /** Turns profiling on; returns false when the adapter cannot time kernels. */
  enable(): boolean {
    if (!this.available) return false;
    this.querySet ??= this.gpu.device.createQuerySet({ type: 'timestamp', count: MAX_QUERIES });
    this.resolveBuffer ??= this.buffers.create('timestamps', MAX_QUERIES * 8, BufferUsage.QUERY_RESOLVE | BufferUsage.COPY_SRC);
    this.enabled = true;
    return true;
  }

  nextWrites(label: string): GPUComputePassTimestampWrites | undefined {
    if (!this.querySet || this.labels.length * 2 + 2 > MAX_QUERIES) return undefined;
    const index = this.labels.length * 2;
    this.labels.push(label);
    return { querySet: this.querySet, beginningOfPassWriteIndex: index, endOfPassWriteIndex: index + 1 };
  }

  resolve(encoder: GPUCommandEncoder): void {
    if (!this.querySet || !this.resolveBuffer || this.labels.length === 0) return;
    const labels = this.labels;
    this.labels = [];
    encoder.resolveQuerySet(this.querySet, 0, labels.length * 2, this.resolveBuffer, 0);
    const buffer = this.resolveBuffer;
    // Read back after this submission: queued behind it on the same queue.
    this.pending.push(Promise.resolve().then(async () => {
      const times = new BigUint64Array(await this.buffers.read(buffer, 0, labels.length * 16));
      labels.forEach((label, i) => {
        const t = this.totals.get(label) ?? { label, calls: 0, ms: 0 };
        t.calls++;
        t.ms += Number(times[2 * i + 1] - times[2 * i]) / 1e6;
        this.totals.set(label, t);
      });
    }));
  }

  /** Kernel times accumulated so far, slowest first. */
  async report(): Promise<KernelTime[]> {
    await Promise.all(this.pending.splice(0));
    return [...this.totals.values()].sort((a, b) => b.ms - a.ms);
  }
}
