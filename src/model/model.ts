// A loaded model: config, tokenizer, fingerprint and its weights in GPU memory (still
// quantized). Loading streams the file tensor by tensor into GPU buffers.
import { GpuOutOfMemoryError, type GpuRuntime } from '../gpu/index.js';
import { readModelConfig, type ModelConfig } from './config.js';
import { modelFingerprint } from './fingerprint.js';
import { GgmlType, ggmlTypeName, GgufError, Metadata, type GgufHeader } from './gguf.js';
import { uploadWeight, type GpuWeight } from './kernels/matmul.js';
import { readGgufHeader, streamTensors, type ProgressCallback } from './loader.js';
import { KeepingReader, openModelSource, type ModelSource } from './source.js';
import { Tokenizer } from './tokenizer.js';

export interface LayerWeights {
  attnNorm: GpuWeight;
  q: GpuWeight;
  k: GpuWeight;
  v: GpuWeight;
  o: GpuWeight;
  ffnNorm: GpuWeight;
  gate: GpuWeight;
  up: GpuWeight;
  down: GpuWeight;
}

export interface ModelWeights {
  tokenEmbedding: GpuWeight;
  outputNorm: GpuWeight;
  /** token_embd itself when the model ties its embeddings. */
  output: GpuWeight;
  layers: LayerWeights[];
  /** llama 3.1 style per-pair rope frequency factors, when the file has them (kept on the host: they go into the RoPE table). */
  ropeFreqFactors?: Float32Array;
}

export interface LoadModelOptions {
  onProgress?: ProgressCallback;
  signal?: AbortSignal;
  /** A download that sends no byte for this long fails (default 30 000 ms). */
  idleTimeoutMs?: number;
  /** Keep a copy of the file's bytes in memory (Model.keptBytes), to upload them again without reading the source. */
  keepBytes?: boolean;
}

export class Model {
  private constructor(
    readonly rt: GpuRuntime,
    readonly source: string,
    readonly header: GgufHeader,
    readonly config: ModelConfig,
    readonly tokenizer: Tokenizer,
    readonly fingerprint: string,
    readonly weights: ModelWeights,
    readonly chatTemplate: string | undefined,
    /** The file's bytes, when loaded with keepBytes. */
    readonly keptBytes: Blob | null = null,
  ) {}

  static async load(rt: GpuRuntime, source: ModelSource, options: LoadModelOptions = {}): Promise<Model> {
    const opened = await openModelSource(source, { signal: options.signal, idleTimeoutMs: options.idleTimeoutMs });
    const keeping = options.keepBytes ? new KeepingReader(opened) : null;
    const reader = keeping ?? opened;
    const uploaded = new Map<string, GpuWeight>();
    try {
      options.onProgress?.({ phase: 'header', loadedBytes: 0, totalBytes: reader.size });
      const header = await readGgufHeader(reader);
      const config = readModelConfig(header, reader.name);
      const meta = new Metadata(header.metadata, reader.name);
      const tokenizer = Tokenizer.fromMetadata(meta);
      const fingerprint = await modelFingerprint(header);
      rt.device.pushErrorScope('out-of-memory');
      rt.device.pushErrorScope('validation');
      let memoryError: GPUError | null;
      let validationError: GPUError | null;
      let ropeFreqFactors: Float32Array | undefined;
      try {
        await streamTensors(reader, header, (info, bytes) => {
          options.signal?.throwIfAborted();
          if (info.name === ROPE_FREQS) ropeFreqFactors = readRopeFreqs(info.type, bytes, reader.name);
          else uploaded.set(info.name, uploadWeight(rt, info.name, info.type, info.dims, bytes));
        }, options.onProgress);
        await rt.sync();
      } finally {
        validationError = await rt.device.popErrorScope();
        memoryError = await rt.device.popErrorScope();
      }
      if (validationError) throw new Error(`${reader.name}: the GPU refused the model's weights: ${validationError.message}`);
      if (memoryError) {
        const mb = ([...uploaded.values()].reduce((sum, w) => sum + w.buffer.size, 0) / 1e6).toFixed(1);
        throw new GpuOutOfMemoryError(`${reader.name}: not enough GPU memory for the model's weights (${mb} MB): ${memoryError.message}`);
      }
      const weights = { ...collectWeights(config, uploaded, reader.name), ropeFreqFactors };
      options.onProgress?.({ phase: 'done', loadedBytes: reader.size ?? reader.position, totalBytes: reader.size });
      const template = header.metadata.get('tokenizer.chat_template');
      return new Model(rt, reader.name, header, config, tokenizer, fingerprint, weights,
        typeof template === 'string' ? template : undefined, keeping?.kept() ?? null);
    } catch (e) {
      for (const w of uploaded.values()) rt.buffers.destroy(w.buffer);
      throw e;
    } finally {
      await reader.close();
    }
  }

  /** Frees the weights' GPU memory. */
  destroy(): void {
    const all = new Set<GpuWeight>([this.weights.tokenEmbedding, this.weights.outputNorm, this.weights.output]);
    for (const layer of this.weights.layers) Object.values(layer).forEach((w) => all.add(w));
    for (const w of all) {
      this.rt.forget(w.buffer);
      this.rt.buffers.destroy(w.buffer);
    }
  }
}

const ROPE_FREQS = 'rope_freqs.weight';

function readRopeFreqs(type: GgmlType, bytes: Uint8Array, source: string): Float32Array {
  if (type !== GgmlType.F32) throw new GgufError(`tensor ${ROPE_FREQS} has type ${ggmlTypeName(type)}; only F32 is supported`, source);
  return new Float32Array(bytes.slice().buffer);
}

function collectWeights(c: ModelConfig, byName: Map<string, GpuWeight>, source: string): Omit<ModelWeights, 'ropeFreqFactors'> {
  const get = (name: string): GpuWeight => {
    const w = byName.get(name);
    if (!w) throw new GgufError(`tensor ${name} is missing`, source);
    return w;
  };
  const layers: LayerWeights[] = [];
  for (let l = 0; l < c.layerCount; l++) {
    const p = `blk.${l}.`;
    layers.push({
      attnNorm: get(p + 'attn_norm.weight'),
      q: get(p + 'attn_q.weight'),
      k: get(p + 'attn_k.weight'),
      v: get(p + 'attn_v.weight'),
      o: get(p + 'attn_output.weight'),
      ffnNorm: get(p + 'ffn_norm.weight'),
      gate: get(p + 'ffn_gate.weight'),
      up: get(p + 'ffn_up.weight'),
      down: get(p + 'ffn_down.weight'),
    });
  }
  const tokenEmbedding = get('token_embd.weight');
  return {
    tokenEmbedding,
    outputNorm: get('output_norm.weight'),
    output: c.tiedEmbeddings ? tokenEmbedding : get('output.weight'),
    layers,
  };
}
