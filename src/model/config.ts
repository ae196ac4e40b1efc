// Model hyperparameters read from GGUF metadata (Llama family).
import { GgufError, Metadata, type GgufHeader, type TensorInfo } from './gguf.js';

export interface ModelConfig {
  architecture: string;
  name: string;
  contextLength: number;
  embeddingDim: number;
  layerCount: number;
  headCount: number;
  kvHeadCount: number;
  headDim: number;
  ffnDim: number;
  vocabSize: number;
  rmsEps: number;
  ropeDim: number;
  ropeFreqBase: number;
  /** 'norm' rotates adjacent pairs (llama.cpp LLAMA_ROPE_TYPE_NORM), 'neox' rotates halves. */
  ropeMode: 'norm' | 'neox';
  /** The output projection shares token_embd (no output.weight tensor). */
  tiedEmbeddings: boolean;
}

/** Architectures whose GGUF tensors and math are the Llama block (norm, rope, GQA, SwiGLU), with their rope style. */
const LLAMA_FAMILY: Record<string, 'norm' | 'neox'> = { llama: 'norm' };

/** Bounds on hyperparameters: far above any real model, low enough that sizes derived from them stay exact. */
const MAX_LAYERS = 4096;
const MAX_DIM = 1 << 20;
const MAX_HEADS = 4096;
/** Context lengths above this are clamped (2^24 tokens; the KV cache bounds what the engine serves anyway). */
export const MAX_CONTEXT_LENGTH = 1 << 24;

export function readModelConfig(header: GgufHeader, source = 'model'): ModelConfig {
  const meta = new Metadata(header.metadata, source);
  const arch = meta.string('general.architecture');
  const ropeMode = LLAMA_FAMILY[arch];
  if (!ropeMode) {
    const shown = arch.length > 40 ? `${arch.slice(0, 40)}...` : arch;
    throw new GgufError(`unsupported architecture "${shown}" (supported: ${Object.keys(LLAMA_FAMILY).join(', ')})`, source);
  }
  const key = (k: string) => `${arch}.${k}`;
  const embeddingDim = meta.integer(key('embedding_length'), 1, MAX_DIM);
  const headCount = meta.integer(key('attention.head_count'), 1, MAX_HEADS);
  const headDim = meta.integer(key('attention.key_length'), 1, MAX_DIM, Math.floor(embeddingDim / headCount));
  const tensors = new Map(header.tensors.map((t) => [t.name, t]));
  const embd = requireTensor(tensors, 'token_embd.weight', source);
  const config: ModelConfig = {
    architecture: arch,
    name: meta.string('general.name', source),
    contextLength: Math.min(meta.integer(key('context_length'), 1, 2 ** 32), MAX_CONTEXT_LENGTH),
    embeddingDim,
    layerCount: meta.integer(key('block_count'), 1, MAX_LAYERS),
    headCount,
    kvHeadCount: meta.integer(key('attention.head_count_kv'), 1, MAX_HEADS, headCount),
    headDim,
    ffnDim: meta.integer(key('feed_forward_length'), 1, MAX_DIM),
    vocabSize: embd.dims[1] ?? 0,
    rmsEps: meta.positive(key('attention.layer_norm_rms_epsilon'), 1e-5),
    ropeDim: meta.integer(key('rope.dimension_count'), 1, MAX_DIM, headDim),
    ropeFreqBase: meta.positive(key('rope.freq_base'), 10000),
    ropeMode,
    tiedEmbeddings: !tensors.has('output.weight'),
  };
  checkHeads(config, meta, key, source);
  checkVocabulary(config, meta, key, source);
  checkShapes(config, tensors, source);
  checkNoOtherTensors(config, header.tensors, source);
  return config;
}

function requireTensor(tensors: Map<string, TensorInfo>, name: string, source: string): TensorInfo {
  const t = tensors.get(name);
  if (!t) throw new GgufError(`tensor ${name} is missing`, source);
  return t;
}

/** Head counts and sizes the attention and RoPE kernels can compute with, as llama.cpp checks them. */
function checkHeads(c: ModelConfig, meta: Metadata, key: (k: string) => string, source: string): void {
  if (!meta.has(key('attention.key_length')) && c.embeddingDim % c.headCount !== 0) {
    throw new GgufError(`${key('embedding_length')} ${c.embeddingDim} is not a multiple of ${key('attention.head_count')} ${c.headCount}`, source);
  }
  if (c.headCount % c.kvHeadCount !== 0) {
    throw new GgufError(`${key('attention.head_count')} ${c.headCount} is not a multiple of ${key('attention.head_count_kv')} ${c.kvHeadCount}`, source);
  }
  const valueLength = meta.integer(key('attention.value_length'), 1, MAX_DIM, c.headDim);
  if (valueLength !== c.headDim) {
    throw new GgufError(`${key('attention.value_length')} ${valueLength} differs from the key length ${c.headDim} (not supported)`, source);
  }
  if (c.headDim % 2 !== 0) throw new GgufError(`the head size ${c.headDim} is odd; RoPE needs an even head size`, source);
  if (c.ropeDim !== c.headDim) {
    throw new GgufError(`${key('rope.dimension_count')} ${c.ropeDim} differs from the head size ${c.headDim} (llama rotates whole heads)`, source);
  }
}

/** The tokenizer's vocabulary is the embedding's: one row per token. */
function checkVocabulary(c: ModelConfig, meta: Metadata, key: (k: string) => string, source: string): void {
  const tokens = meta.has('tokenizer.ggml.tokens') ? meta.strings('tokenizer.ggml.tokens')!.length : undefined;
  if (tokens !== undefined && tokens !== c.vocabSize) {
    throw new GgufError(`the vocabulary has ${tokens} tokens (tokenizer.ggml.tokens) but token_embd.weight has ${c.vocabSize} rows`, source);
  }
  const declared = meta.has(key('vocab_size')) ? meta.number(key('vocab_size')) : undefined;
  if (declared !== undefined && declared !== c.vocabSize) {
    throw new GgufError(`${key('vocab_size')} is ${declared} but token_embd.weight has ${c.vocabSize} rows`, source);
  }
}

/** Every tensor the forward pass reads exists with the shape the config implies. */
function checkShapes(c: ModelConfig, tensors: Map<string, TensorInfo>, source: string): void {
  const q = c.headCount * c.headDim;
  const kv = c.kvHeadCount * c.headDim;
  const expect = (name: string, dims: number[]) => {
    const t = requireTensor(tensors, name, source);
    const trailing = t.dims.slice(dims.length);
    if (t.dims.slice(0, dims.length).join(',') !== dims.join(',') || trailing.some((d) => d !== 1)) {
      throw new GgufError(`tensor ${name} has shape [${t.dims.join(', ')}], expected [${dims.join(', ')}]`, source);
    }
  };
  if (c.vocabSize < 1) throw new GgufError('tensor token_embd.weight has no rows (it must be [embedding, vocabulary])', source);
  expect('token_embd.weight', [c.embeddingDim, c.vocabSize]);
  expect('output_norm.weight', [c.embeddingDim]);
  if (!c.tiedEmbeddings) expect('output.weight', [c.embeddingDim, c.vocabSize]);
  if (tensors.has(ROPE_FREQS)) expect(ROPE_FREQS, [c.ropeDim / 2]);
  for (let l = 0; l < c.layerCount; l++) {
    const p = `blk.${l}.`;
    expect(p + 'attn_norm.weight', [c.embeddingDim]);
    expect(p + 'attn_q.weight', [c.embeddingDim, q]);
    expect(p + 'attn_k.weight', [c.embeddingDim, kv]);
    expect(p + 'attn_v.weight', [c.embeddingDim, kv]);
    expect(p + 'attn_output.weight', [q, c.embeddingDim]);
    expect(p + 'ffn_norm.weight', [c.embeddingDim]);
    expect(p + 'ffn_gate.weight', [c.embeddingDim, c.ffnDim]);
    expect(p + 'ffn_up.weight', [c.embeddingDim, c.ffnDim]);
    expect(p + 'ffn_down.weight', [c.ffnDim, c.embeddingDim]);
  }
}

const ROPE_FREQS = 'rope_freqs.weight';
const LAYER_TENSORS = new Set(['attn_norm', 'attn_q', 'attn_k', 'attn_v', 'attn_output', 'ffn_norm', 'ffn_gate', 'ffn_up', 'ffn_down']);
const MODEL_TENSORS = new Set(['token_embd.weight', 'output_norm.weight', 'output.weight', ROPE_FREQS]);

/**
 * Refuses tensors the forward pass would not read: a layer past block_count, or a variant's extra
 * weights (biases, experts) that leaving out would make the output wrong.
 */
function checkNoOtherTensors(c: ModelConfig, tensors: readonly TensorInfo[], source: string): void {
  for (const t of tensors) {
    if (MODEL_TENSORS.has(t.name)) continue;
    const layer = /^blk\.(\d+)\.([a-z_]+)\.weight$/.exec(t.name);
    if (layer && LAYER_TENSORS.has(layer[2])) {
      if (Number(layer[1]) < c.layerCount) continue;
      throw new GgufError(`tensor ${t.name} is for layer ${layer[1]}, but the model has ${c.layerCount} layers (${c.architecture}.block_count)`, source);
    }
    throw new GgufError(`tensor ${t.name} is not part of the ${c.architecture} model wgserve computes (an unsupported variant?)`, source);
  }
}
