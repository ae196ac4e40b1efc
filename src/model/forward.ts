// The Llama forward pass over a Batch: every layer of every sequence's new tokens in one GPU
// submission, K/V written into paged cache buffers, logits only for the sample rows.
import type { GpuRuntime } from '../gpu/index.js';
import { BatchBuffers, validateBatch, type Batch } from './batch.js';
import { createKernelSet, type KernelSet, type Numerics } from './kernel-set.js';
import { AttentionWorkspace, attentionPartials, chunkKeysFor } from './kernels/attention.js';
import { gatherRows } from './kernels/elementwise.js';
import { embed } from './kernels/embedding.js';
import type { KvLayout } from './kernels/kv.js';
import { reserveActivationScratch } from './kernels/matmul.js';
import { RopeTable } from './rope-table.js';
import {
  decodeLogprobs,
  logprobsRowWords,
  MAX_LOGPROBS,
  mostLogprobs,
  recordSampling,
  ROW_SAMPLING_BYTES,
  type RowLogprobs,
  type RowSampling,
  type SamplingBuffers,
} from './kernels/sampling.js';
import type { Model } from './model.js';

/** The paged KV cache as the model sees it: one K and one V buffer per layer. */
export interface KvBuffers {
  layout: KvLayout;
  keys: GPUBuffer[];
  values: GPUBuffer[];
}

/** Activation buffers sized for `tokens` rows and `samples` sampled rows; reused every step. */
class Workspace implements SamplingBuffers {
  x!: GPUBuffer;
  normed!: GPUBuffer;
  q!: GPUBuffer;
  k!: GPUBuffer;
  v!: GPUBuffer;
  attn!: GPUBuffer;
  gate!: GPUBuffer;
  up!: GPUBuffer;
  act!: GPUBuffer;
  sampled!: GPUBuffer;
  sampledNormed!: GPUBuffer;
  logits!: GPUBuffer;
  ids!: GPUBuffer;
  rowParams!: GPUBuffer;
  logprobs!: GPUBuffer;
  /** Grow-only, created on first use: the sampling edit list, and the raw logits kept for logprobs. */
  private editList: GPUBuffer | null = null;
  private rawLogitsCopy: GPUBuffer | null = null;
  private maskList: GPUBuffer | null = null;
  tokens = 0;
  samples = 0;

  constructor(private readonly rt: GpuRuntime, private readonly model: Model) {}

  ensure(tokens: number, samples: number): void {
    if (tokens <= this.tokens && samples <= this.samples) return;
    this.destroy();
    this.tokens = Math.max(tokens, this.tokens, 16);
    this.samples = Math.max(samples, this.samples, 4);
    const c = this.model.config;
    const f32 = (label: string, rows: number, cols: number) => this.rt.buffers.create(`act.${label}`, rows * cols * 4);
    const t = this.tokens;
    this.x = f32('x', t, c.embeddingDim);
    this.normed = f32('normed', t, c.embeddingDim);
    this.q = f32('q', t, c.headCount * c.headDim);
    this.k = f32('k', t, c.kvHeadCount * c.headDim);
    this.v = f32('v', t, c.kvHeadCount * c.headDim);
    this.attn = f32('attn', t, c.headCount * c.headDim);
    this.gate = f32('gate', t, c.ffnDim);
    this.up = f32('up', t, c.ffnDim);
    this.act = f32('act', t, c.ffnDim);
    this.sampled = f32('sampled', this.samples, c.embeddingDim);
    this.sampledNormed = f32('sampledNormed', this.samples, c.embeddingDim);
    this.logits = f32('logits', this.samples, c.vocabSize);
    this.ids = f32('ids', this.samples, 1);
    this.rowParams = this.rt.buffers.create('act.rowParams', this.samples * ROW_SAMPLING_BYTES);
    this.logprobs = f32('logprobs', this.samples, logprobsRowWords(MAX_LOGPROBS));
  }

  edits(bytes: number): GPUBuffer {
    if (!this.editList || this.editList.size < bytes) {
      const size = Math.max(bytes, 2 * (this.editList?.size ?? 0), 4096);
      this.release(this.editList);
      this.editList = this.rt.buffers.create('act.samplingEdits', size);
    }
    return this.editList;
  }

  masks(bytes: number): GPUBuffer {
    if (!this.maskList || this.maskList.size < bytes) {
      const size = Math.max(bytes, 2 * (this.maskList?.size ?? 0));
      this.release(this.maskList);
      this.maskList = this.rt.buffers.create('act.samplingMasks', size);
    }
    return this.maskList;
  }

  rawLogits(bytes: number): GPUBuffer {
    if (!this.rawLogitsCopy || this.rawLogitsCopy.size < bytes) {
      this.release(this.rawLogitsCopy);
      this.rawLogitsCopy = this.rt.buffers.create('act.rawLogits', Math.max(bytes, this.logits.size));
    }
    return this.rawLogitsCopy;
  }

  destroy(): void {
    for (const b of [this.x, this.normed, this.q, this.k, this.v, this.attn, this.gate, this.up, this.act,
      this.sampled, this.sampledNormed, this.logits, this.ids, this.rowParams, this.logprobs, this.editList, this.rawLogitsCopy, this.maskList]) {
      this.release(b);
    }
    this.editList = null;
    this.maskList = null;
    this.rawLogitsCopy = null;
  }

  private release(b: GPUBuffer | null | undefined): void {
    if (!b) return;
    this.rt.forget(b);
    this.rt.buffers.destroy(b);
  }
}

export type { Numerics } from './kernel-set.js';

/**
 * Called while a pass is recorded, after each op, with the buffer holding its output
 * (`rows` × `cols` f32, row-major; the buffer may be larger). Names follow llama.cpp's graph
 * ('attn_norm-0', 'Qcur-0', ...) so intermediates can be compared with its eval callback. The
 * buffer is overwritten later in the same pass: copy it (GpuRuntime.copy) to keep it.
 */
export type TensorInspector = (name: string, buffer: GPUBuffer, rows: number, cols: number) => void;

export interface ForwardOptions {
  /**
   * The kernel set (model/kernel-set.ts): 'fast' (default; batch invariant) or 'llama.cpp'
   * (llama.cpp's CPU arithmetic bit for bit, for parity tests).
   */
  numerics?: Numerics;
  inspect?: TensorInspector;
}

export class ForwardPass {
  private readonly batchBuffers: BatchBuffers;
  private readonly ws: Workspace;
  private readonly ropeTable: RopeTable;
  private readonly kernels: KernelSet;
  private readonly attentionWs: AttentionWorkspace;
  private readonly chunkKeys: number;
  private readonly inspect: TensorInspector;

  constructor(readonly model: Model, options: ForwardOptions = {}) {
    this.inspect = options.inspect ?? (() => {});
    this.batchBuffers = new BatchBuffers(model.rt);
    this.ws = new Workspace(model.rt, model);
    this.ropeTable = new RopeTable(model.rt, model.config, model.weights.ropeFreqFactors);
    this.chunkKeys = chunkKeysFor(model.config.contextLength);
    this.kernels = createKernelSet(model.rt, options.numerics ?? 'fast', this.chunkKeys);
    this.attentionWs = new AttentionWorkspace(model.rt);
  }

  get numerics(): Numerics {
    return this.kernels.numerics;
  }

  /**
   * Sizes every buffer a step needs for the largest step the caller will run: `tokens` rows,
   * `seqs` sequences (each sampling at most one row), contexts up to `contextLength` in pages of
   * `pageSize`. Steps within these bounds then allocate no GPU memory, whatever their shape, so
   * memory is flat under any load (a serving engine calls it once, at load).
   */
  reserve(limits: { tokens: number; seqs: number; contextLength: number; pageSize: number }): void {
    const { rt, config: c } = this.model;
    const { tokens, seqs, contextLength, pageSize } = limits;
    this.ws.ensure(tokens, seqs);
    reserveActivationScratch(rt, tokens * Math.max(c.embeddingDim, c.ffnDim) * 4);
    this.attentionWs.reserve(attentionPartials(seqs, c.headCount, contextLength, this.chunkKeys), c.headDim);
    this.ropeTable.cover(contextLength - 1);
    this.batchBuffers.reserve(tokens, seqs, seqs * Math.ceil(contextLength / pageSize), seqs);
  }

  /**
   * Records the whole forward pass and the sampling of one token per sample row; nothing is
   * submitted yet. Without sampling parameters every row is greedy; with them, `sampling[i]`
   * belongs to sample row i.
   */
  record(batch: Batch, kv: KvBuffers, sampling?: RowSampling[]): void {
    this.recordLogits(batch, kv);
    recordSampling(this.model.rt, this.ws, sampling, batch.sampleRows.length, this.model.config.vocabSize);
  }

  /** Records the forward pass up to the logits of every sample row. */
  private recordLogits(batch: Batch, kv: KvBuffers): void {
    const { rt, config: c, weights: w } = this.model;
    validateBatch(batch, kv.layout.pageSize);
    const tokens = batch.tokenIds.length;
    const samples = batch.sampleRows.length;
    const seqs = batch.seqStarts.length - 1;
    const maxContext = Math.max(...batch.contextLens);
    // Every buffer the step needs is sized before the first dispatch is recorded, so a step is
    // one submission (growing a buffer mid-recording would submit what is recorded so far).
    this.ws.ensure(tokens, samples);
    reserveActivationScratch(rt, tokens * Math.max(c.embeddingDim, c.ffnDim) * 4);
    this.attentionWs.reserve(attentionPartials(seqs, c.headCount, maxContext, this.chunkKeys), c.headDim);
    const cosSin = this.ropeTable.cover(Math.max(...batch.positions));
    this.batchBuffers.upload(batch);
    const k = this.kernels;
    k.beginStep(batch);
    const b = this.batchBuffers;
    const ws = this.ws;
    const maxQueryLen = Math.max(...Array.from({ length: seqs }, (_, s) => batch.seqStarts[s + 1] - batch.seqStarts[s]));

    const E = c.embeddingDim;
    const inspect = this.inspect;
    embed(rt, w.tokenEmbedding, b.tokenIds, ws.x, tokens);
    inspect('inp_embd', ws.x, tokens, E);
    for (let l = 0; l < c.layerCount; l++) {
      const lw = w.layers[l];
      k.rmsNorm(ws.x, lw.attnNorm.buffer, ws.normed, tokens, E, c.rmsEps);
      inspect(`attn_norm-${l}`, ws.normed, tokens, E);
      k.matmul(ws.normed, tokens, [{ w: lw.q, y: ws.q }, { w: lw.k, y: ws.k }, { w: lw.v, y: ws.v }]);
      inspect(`Qcur-${l}`, ws.q, tokens, c.headCount * c.headDim);
      inspect(`Kcur-${l}`, ws.k, tokens, c.kvHeadCount * c.headDim);
      inspect(`Vcur-${l}`, ws.v, tokens, c.kvHeadCount * c.headDim);
      const ropeArgs = { positions: b.positions, cosSin, tokens, headDim: c.headDim, ropeDim: c.ropeDim, mode: c.ropeMode };
      k.rope({ ...ropeArgs, x: ws.q, heads: c.headCount });
      k.rope({ ...ropeArgs, x: ws.k, heads: c.kvHeadCount });
      inspect(`Qrope-${l}`, ws.q, tokens, c.headCount * c.headDim);
      inspect(`Krope-${l}`, ws.k, tokens, c.kvHeadCount * c.headDim);
      k.writeKv(kv.layout, ws.k, ws.v, b.slotMapping, kv.keys[l], kv.values[l], tokens);
      k.attention({
        layout: kv.layout,
        q: ws.q,
        kCache: kv.keys[l],
        vCache: kv.values[l],
        out: ws.attn,
        batch: b,
        maxBlocksPerSeq: batch.maxBlocksPerSeq,
        tokens,
        seqs,
        heads: c.headCount,
        maxContext,
        maxQueryLen,
        workspace: this.attentionWs,
      });
      inspect(`kqv_out-${l}`, ws.attn, tokens, c.headCount * c.headDim);
      k.matmul(ws.attn, tokens, [{ w: lw.o, y: ws.x, accumulate: true }]);
      inspect(`ffn_inp-${l}`, ws.x, tokens, E);
      k.rmsNorm(ws.x, lw.ffnNorm.buffer, ws.normed, tokens, E, c.rmsEps);
      inspect(`ffn_norm-${l}`, ws.normed, tokens, E);
      k.matmul(ws.normed, tokens, [{ w: lw.gate, y: ws.gate }, { w: lw.up, y: ws.up }]);
      inspect(`ffn_gate-${l}`, ws.gate, tokens, c.ffnDim);
      inspect(`ffn_up-${l}`, ws.up, tokens, c.ffnDim);
      k.swiglu(ws.gate, ws.up, ws.act, tokens * c.ffnDim);
      inspect(`ffn_swiglu-${l}`, ws.act, tokens, c.ffnDim);
      k.matmul(ws.act, tokens, [{ w: lw.down, y: ws.x, accumulate: true }]);
      inspect(`l_out-${l}`, ws.x, tokens, E);
    }
    gatherRows(rt, ws.x, b.sampleRows, ws.sampled, samples, E);
    k.rmsNorm(ws.sampled, w.outputNorm.buffer, ws.sampledNormed, samples, E, c.rmsEps);
    inspect('result_norm', ws.sampledNormed, samples, E);
    // Every sampled row is the one output of its sequence: alone, as in llama.cpp.
    k.matmul(ws.sampledNormed, samples, [{ w: w.output, y: ws.logits }], true);
    inspect('result_output', ws.logits, samples, c.vocabSize);
  }

  /** Runs the batch and returns the sampled token of every sample row (only ids are read back). */
  async sample(batch: Batch, kv: KvBuffers, sampling?: RowSampling[], prepare?: () => Promise<void>): Promise<Int32Array> {
    const rt = this.model.rt;
    if (prepare) {
      // The forward pass goes first in a submission of its own, so the GPU computes the logits
      // while `prepare` runs on the CPU; the sampling that needs its results is the second one.
      this.recordLogits(batch, kv);
      rt.submit();
      await prepare();
      recordSampling(rt, this.ws, sampling, batch.sampleRows.length, this.model.config.vocabSize);
    } else {
      this.record(batch, kv, sampling);
    }
    rt.submit();
    return this.model.rt.buffers.readI32(this.ws.ids, 0, batch.sampleRows.length);
  }

  /**
   * Runs the batch and returns the sampled tokens, and for rows whose `logprobs` is set the
   * sampled token's logprob and the most likely alternatives (log_softmax of the raw logits).
   * With `prepare`, the forward pass is submitted before it runs and the sampling after it, so
   * CPU work the sampling needs (filling a grammar's masks into `sampling`) overlaps the GPU.
   */
  async sampleWithLogprobs(batch: Batch, kv: KvBuffers, sampling: RowSampling[], prepare?: () => Promise<void>): Promise<{ ids: Int32Array; logprobs: (RowLogprobs | null)[] }> {
    const ids = await this.sample(batch, kv, sampling, prepare);
    const top = mostLogprobs(sampling);
    if (top < 0) return { ids, logprobs: sampling.map(() => null) };
    const words = await this.model.rt.buffers.read(this.ws.logprobs, 0, sampling.length * logprobsRowWords(top) * 4);
    return { ids, logprobs: decodeLogprobs(words, sampling, top) };
  }

  /** Runs the batch and returns the logits of every sample row ([samples, vocab]); for tests and tools. */
  async logits(batch: Batch, kv: KvBuffers): Promise<Float32Array> {
    this.record(batch, kv);
    this.model.rt.submit();
    return this.model.rt.buffers.readF32(this.ws.logits, 0, batch.sampleRows.length * this.model.config.vocabSize);
  }

  destroy(): void {
    this.ws.destroy();
    this.batchBuffers.destroy();
    this.ropeTable.destroy();
    this.kernels.destroy();
    this.attentionWs.destroy();
  }
}
