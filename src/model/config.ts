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

export function readModelConfig(header: GgufHeader, source = 'model'): ModelConfig {
  const meta = new Metadata(header.metadata, source);
  const arch = meta.string('general.architecture');
  const ropeMode = LLAMA_FAMILY[arch];
  if (!ropeMode) {
    throw new GgufError(`unsupported architecture "${arch}" (supported: ${Object.keys(LLAMA_FAMILY).join(', ')})`, source);
  }
  const key = (k: string) => `${arch}.${k}`;
  const embeddingDim = meta.number(key('embedding_length'));
  const headCount = meta.number(key('attention.head_count'));
  const headDim = meta.number(key('attention.key_length'), embeddingDim / headCount);
  const tensors = new Map(header.tensors.map((t) => [t.name, t]));
  const embd = requireTensor(tensors, 'token_embd.weight', source);
  const config: ModelConfig = {
    architecture: arch,
    name: meta.string('general.name', source),
    contextLength: meta.number(key('context_length')),
    embeddingDim,
    layerCount: meta.number(key('block_count')),
    headCount,
    kvHeadCount: meta.number(key('attention.head_count_kv'), headCount),
    headDim,
    ffnDim: meta.number(key('feed_forward_length')),
    vocabSize: embd.dims[1],
    rmsEps: meta.number(key('attention.layer_norm_rms_epsilon'), 1e-5),
    ropeDim: meta.number(key('rope.dimension_count'), headDim),
    ropeFreqBase: meta.number(key('rope.freq_base'), 10000),
    ropeMode,
    tiedEmbeddings: !tensors.has('output.weight'),
  };
  checkShapes(config, tensors, source);
  return config;
}

function requireTensor(tensors: Map<string, TensorInfo>, name: string, source: string): TensorInfo {
  const t = tensors.get(name);
  if (!t) throw new GgufError(`tensor ${name} is missing`, source);
  return t;
}

/** Every tensor the forward pass reads exists with the shape the config implies. */
function checkShapes(c: ModelConfig, tensors: Map<string, TensorInfo>, source: string): void {
  if (!Number.isInteger(c.headDim) || c.headCount % c.kvHeadCount !== 0) {
    throw new GgufError(`inconsistent heads: ${c.headCount} heads, ${c.kvHeadCount} kv heads, dim ${c.embeddingDim}`, source);
  }
  const q = c.headCount * c.headDim;
  const kv = c.kvHeadCount * c.headDim;
  const expect = (name: string, dims: number[]) => {
    const t = requireTensor(tensors, name, source);
    const got = t.dims.length === 1 ? [t.dims[0]] : t.dims.slice(0, 2);
    if (got.join(',') !== dims.join(',')) {
      throw new GgufError(`tensor ${name} has shape [${t.dims}], expected [${dims}]`, source);
    }
  };
  expect('token_embd.weight', [c.embeddingDim, c.vocabSize]);
  expect('output_norm.weight', [c.embeddingDim]);
  if (!c.tiedEmbeddings) expect('output.weight', [c.embeddingDim, c.vocabSize]);
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
