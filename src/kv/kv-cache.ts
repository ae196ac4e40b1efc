// The paged KV cache in GPU memory: per layer one K and one V buffer of numPages pages, and
// the page pool that hands those pages out.
import type { GpuRuntime } from '../gpu/index.js';
import { checkKvLayout, copyKvPages, isQuantizedKv, kvBufferBytes, kvPageBytes, packPageCopies, PAGE_COPY_STRIDE, type KvBuffers, type KvFormat, type KvLayout, type ModelConfig, type PageCopy } from '../model/index.js';
import { PagePool } from './page-pool.js';

export interface KvCacheOptions {
  /** Tokens per page (default 16). */
  pageSize?: number;
  /**
   * Storage format of K and V (default f16: half the memory, read with unpack2x16float). q8_0
   * and q4_0 (fast kernel set only; head dimension a multiple of 32) take 0.53x and 0.28x of f16's
   * memory per token, so the same memory holds that many more pages.
   */
  format?: KvFormat;
  /** GPU memory for the whole cache, all layers, K and V (default 64 MiB). */
  memoryBytes?: number;
  /** Upper bound on pages (default: as many as memoryBytes and the device limits allow). */
  maxPages?: number;
}

const DEFAULT_MEMORY = 64 * 1024 * 1024;
/** The most GPU memory a KV cache takes when not told (a serving default that fits common GPUs). */
const MAX_DEFAULT_MEMORY = 256 * 1024 * 1024;

const DEFAULT_PAGE_SIZE = 16;

/** GPU memory the KV cache of one token takes, all layers, K and V (in pages of pageSize tokens). */
export function kvBytesPerToken(config: ModelConfig, format: KvFormat = 'f16', pageSize = DEFAULT_PAGE_SIZE): number {
  const page = kvPageBytes({ pageSize, numKvHeads: config.kvHeadCount, headDim: config.headDim, format });
  return (page / pageSize) * 2 * config.layerCount;
}

/**
 * The KV memory the server and the CLI ask for when not told: `contexts` full contexts of
 * `contextLength` tokens, at most 256 MiB. The context a model can then be served with is what
 * the cache holds (KvCache.tokenCapacity), when that is less than the model's. Quantized formats
 * get f16's memory (so more contexts): compressing pages is for holding more of them.
 */
export function defaultKvMemoryBytes(config: ModelConfig, contextLength: number, format: KvFormat = 'f16', contexts = 16): number {
  const basis = isQuantizedKv(format) ? 'f16' : format;
  return Math.min(contexts * contextLength * kvBytesPerToken(config, basis), MAX_DEFAULT_MEMORY);
}

export class KvCache implements KvBuffers {
  readonly pool: PagePool;
  readonly keys: GPUBuffer[] = [];
  readonly values: GPUBuffer[] = [];
  /** Records of the step's page copies (grown, never shrunk). */
  private copyJobs: GPUBuffer | null = null;

  private constructor(private readonly rt: GpuRuntime, readonly layout: KvLayout, layers: number, pool?: PagePool) {
    this.pool = pool ?? new PagePool(layout.numPages);
    const bytes = kvBufferBytes(layout);
    for (let l = 0; l < layers; l++) {
      this.keys.push(rt.buffers.create(`kv.k${l}`, bytes));
      this.values.push(rt.buffers.create(`kv.v${l}`, bytes));
    }
  }

  /** create(), checking that the device had the memory (a GpuOutOfMemoryError if not). */
  static allocate(rt: GpuRuntime, config: ModelConfig, options: KvCacheOptions = {}): Promise<KvCache> {
    const mib = ((options.memoryBytes ?? DEFAULT_MEMORY) / 2 ** 20).toFixed(0);
    return rt.allocating(`a KV cache of ${mib} MiB (ask for less memory)`, () => KvCache.create(rt, config, options), (kv) => kv.destroy());
  }

  static create(rt: GpuRuntime, config: ModelConfig, options: KvCacheOptions = {}): KvCache {
    const pageSize = options.pageSize ?? DEFAULT_PAGE_SIZE;
    const format = options.format ?? 'f16';
    const onePage: KvLayout = { numPages: 1, pageSize, numKvHeads: config.kvHeadCount, headDim: config.headDim, format };
    checkKvLayout(onePage);
    const pageBytes = kvBufferBytes(onePage);
    const budget = options.memoryBytes ?? DEFAULT_MEMORY;
    const byBudget = Math.floor(budget / (pageBytes * 2 * config.layerCount));
    const byBinding = Math.floor(rt.gpu.limits.maxStorageBufferBindingSize / pageBytes);
    const numPages = Math.min(byBudget, byBinding, options.maxPages ?? Infinity);
    if (numPages < 1) throw new Error(`KV cache: ${budget} bytes cannot hold one page of ${pageBytes * 2 * config.layerCount} bytes`);
    return new KvCache(rt, { ...onePage, numPages }, config.layerCount);
  }

  /**
   * A cache of the same layout on another runtime (a new device after the old one was lost),
   * keeping the page pool: the pages' contents are gone, so the pool must hold no page.
   */
  static reallocate(rt: GpuRuntime, old: KvCache): Promise<KvCache> {
    if (old.pool.usedPages || old.pool.cachedPages) throw new Error('KvCache.reallocate: the pool still holds pages');
    const mib = (old.bytes / 2 ** 20).toFixed(0);
    return rt.allocating(`a KV cache of ${mib} MiB`, () => new KvCache(rt, old.layout, old.keys.length, old.pool), (kv) => kv.destroy());
  }

  get pageSize(): number {
    return this.layout.pageSize;
  }

  /** Tokens the whole cache holds. */
  get tokenCapacity(): number {
    return this.layout.numPages * this.layout.pageSize;
  }

  get bytes(): number {
    return kvBufferBytes(this.layout) * 2 * this.keys.length;
  }

  /**
   * Records page copies (a step's copy-on-write operations) in every layer, in order, into the
   * current submission: call it before the step's forward pass, which then sees the copies.
   */
  copyPages(copies: readonly PageCopy[]): void {
    if (!copies.length) return;
    const jobs = packPageCopies(this.layout, copies);
    if (!this.copyJobs || this.copyJobs.size < jobs.byteLength) {
      this.releaseCopyJobs();
      this.copyJobs = this.rt.buffers.create('kv.copyJobs', Math.max(jobs.byteLength, 16 * PAGE_COPY_STRIDE));
    }
    this.rt.buffers.write(this.copyJobs, jobs);
    for (let l = 0; l < this.keys.length; l++) copyKvPages(this.rt, this.layout, this.copyJobs, copies.length, this.keys[l], this.values[l]);
  }

  destroy(): void {
    this.releaseCopyJobs();
    for (const b of [...this.keys, ...this.values]) {
      this.rt.forget(b);
      this.rt.buffers.destroy(b);
    }
  }

  private releaseCopyJobs(): void {
    if (!this.copyJobs) return;
    this.rt.forget(this.copyJobs);
    this.rt.buffers.destroy(this.copyJobs);
    this.copyJobs = null;
  }
}
