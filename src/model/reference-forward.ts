// Plain CPU Llama forward pass (float64 math) over one sequence, straight from the GGUF bytes.
// A reference for the GPU forward pass and for explaining llama.cpp's numerics: attention can
// round chosen intermediate values to f16 the way llama.cpp's CPU backend does (see
// AttentionRounding), and matmul inputs can be rounded onto llama.cpp's activation grid for
// each weight type (ReferenceOptions.activations). Performance is irrelevant; it is meant for
// the tiny test models.
import { readModelConfig, type ModelConfig } from './config.js';
import { parseGgufHeader } from './gguf.js';
import { activationGrid, dequantize, f16ToF32, f32ToF16, type ActivationGrid } from './quant.js';
import { roundActivations } from './quantize.js';

/** Which attention values are rounded to f16; all false is exact math. */
export interface AttentionRounding {
  /** K and V stored as f16 (the KV cache). */
  kv?: boolean;
  /** Q rounded to f16 before K·Q (llama.cpp converts Q to K's vec_dot type, f16, in mul_mat and in CPU flash attention). */
  q?: boolean;
  /** Softmax probabilities rounded to f16 before P·V (llama.cpp without flash attention: mul_mat(v f16, kq) converts kq to f16). */
  probs?: boolean;
  /**
   * llama.cpp's CPU flash attention for one query row with f16 V (ggml_compute_forward_flash_attn_ext_f16_one_chunk):
   * keys in order, online softmax, the V·p accumulator VKQ16 kept in f16 and rounded after every key
   * (ggml_vec_scale_f16 when the max rises, ggml_vec_mad_f16 to add v * exp(s - M)), divided by the f32 sum at the end.
   */
  vAccF16?: boolean;
}

export interface ReferenceOptions {
  /** Attention rounding for all tokens, or per token position (to model prefill and decode paths differently). */
  attention?: AttentionRounding | ((position: number) => AttentionRounding);
  /**
   * 'llama.cpp': every matmul input is first rounded to f32, then onto the grid llama.cpp's CPU
   * matmul uses for the weight's type (quantize.ts roundActivations: Q8_0 blocks for Q8_0/Q4_0,
   * Q8_K blocks for Q4_K/Q6_K, f16, bf16; F32 exact), as the GPU's ForwardPass numerics
   * 'llama.cpp' does. 'fast': as the default kernel set, Q8_0 blocks for Q8_0/Q4_0 weights and
   * Q8_K blocks for Q4_K/Q6_K, float weights' inputs exact.
   * Default 'exact': float64 inputs as they are.
   */
  activations?: 'llama.cpp' | 'fast' | 'exact';
}

const f16 = (x: number) => f16ToF32(f32ToF16(x));

/** Weights of the model as f32 arrays, dequantized from the GGUF bytes. */
export class ReferenceModel {
  readonly config: ModelConfig;
  private readonly tensors = new Map<string, Float32Array>();
  private readonly grids = new Map<string, ActivationGrid | null>();

  constructor(file: Uint8Array) {
    const header = parseGgufHeader(file, 'reference', file.byteLength);
    this.config = readModelConfig(header, 'reference');
    for (const t of header.tensors) {
      const count = t.dims.reduce((a, b) => a * b, 1);
      this.tensors.set(t.name, dequantize(t.type, file.subarray(t.offset, t.offset + t.byteLength), count, t.name));
      this.grids.set(t.name, activationGrid(t.type));
    }
  }

  get(name: string): Float32Array {
    const t = this.tensors.get(name);
    if (!t) throw new Error(`tensor ${name} is missing`);
    return t;
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  /** Logits ([vocab] each) at each of `rows` (token indices of `tokens`, position = index). */
  logits(tokens: number[], rows: number[], options: ReferenceOptions = {}): Float64Array[] {
    const c = this.config;
    const T = tokens.length;
    const E = c.embeddingDim;
    const embd = this.get('token_embd.weight');
    let x: Float64Array[] = tokens.map((id) => Float64Array.from(embd.subarray(id * E, (id + 1) * E)));
    const rounding = (pos: number) => (typeof options.attention === 'function' ? options.attention(pos) : options.attention ?? {});
    // W·x for the weight `name` (`rows` outputs), x rounded as options.activations says.
    const mm = (name: string, x: Float64Array, rows: number): Float64Array => {
      const grid = options.activations === 'llama.cpp' ? this.grids.get(name)
        : options.activations === 'fast' && (this.grids.get(name) === 'q8_0' || this.grids.get(name) === 'q8_k') ? this.grids.get(name) : null;
      return matVec(this.get(name), grid ? Float64Array.from(roundActivations(grid, Float32Array.from(x))) : x, rows);
    };
    for (let l = 0; l < c.layerCount; l++) {
      const p = `blk.${l}.`;
      const normed = x.map((r) => rmsNorm(r, this.get(p + 'attn_norm.weight'), c.rmsEps));
      const q = normed.map((r) => mm(p + 'attn_q.weight', r, c.headCount * c.headDim));
      const k = normed.map((r) => mm(p + 'attn_k.weight', r, c.kvHeadCount * c.headDim));
      const v = normed.map((r) => mm(p + 'attn_v.weight', r, c.kvHeadCount * c.headDim));
      const freqs = this.has('rope_freqs.weight') ? this.get('rope_freqs.weight') : undefined;
      for (let t = 0; t < T; t++) {
        rope(q[t], t, c.headCount, c, freqs);
        rope(k[t], t, c.kvHeadCount, c, freqs);
      }
      const attn = q.map((qt, t) => attention(qt, k, v, t, c, rounding(t)));
      x = x.map((r, t) => add(r, mm(p + 'attn_output.weight', attn[t], E)));
      const normed2 = x.map((r) => rmsNorm(r, this.get(p + 'ffn_norm.weight'), c.rmsEps));
      x = x.map((r, t) => {
        const gate = mm(p + 'ffn_gate.weight', normed2[t], c.ffnDim);
        const up = mm(p + 'ffn_up.weight', normed2[t], c.ffnDim);
        const act = gate.map((g, i) => (g / (1 + Math.exp(-g))) * up[i]);
        return add(r, mm(p + 'ffn_down.weight', act, E));
      });
    }
    const output = c.tiedEmbeddings ? 'token_embd.weight' : 'output.weight';
    return rows.map((t) => mm(output, rmsNorm(x[t], this.get('output_norm.weight'), c.rmsEps), c.vocabSize));
  }
}

/** W (ggml [cols, rows]: `rows` rows of x.length contiguous values) times x. */
function matVec(w: Float32Array, x: Float64Array, rows: number): Float64Array {
  const n = x.length;
  const out = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += w[r * n + i] * x[i];
    out[r] = s;
  }
  return out;
}

function rmsNorm(x: Float64Array, weight: Float32Array, eps: number): Float64Array {
  let sumSq = 0;
  for (const v of x) sumSq += v * v;
  const scale = 1 / Math.sqrt(sumSq / x.length + eps);
  return x.map((v, i) => v * scale * weight[i]);
}

function add(a: Float64Array, b: Float64Array): Float64Array {
  return a.map((v, i) => v + b[i]);
}

/** In place; NORM mode rotates (2i, 2i+1), NEOX (i, i + ropeDim/2); theta = pos * base^(-2i/ropeDim) / freqFactor[i]. */
function rope(x: Float64Array, pos: number, heads: number, c: ModelConfig, freqFactors?: Float32Array): void {
  const half = c.ropeDim / 2;
  for (let h = 0; h < heads; h++) {
    const base = h * c.headDim;
    for (let i = 0; i < half; i++) {
      const theta = (pos * c.ropeFreqBase ** ((-2 * i) / c.ropeDim)) / (freqFactors ? freqFactors[i] : 1);
      const [a, b] = c.ropeMode === 'neox' ? [base + i, base + i + half] : [base + 2 * i, base + 2 * i + 1];
      const [x0, x1] = [x[a], x[b]];
      x[a] = x0 * Math.cos(theta) - x1 * Math.sin(theta);
      x[b] = x0 * Math.sin(theta) + x1 * Math.cos(theta);
    }
  }
}

/** Causal attention of query token t over keys 0..t, every head (GQA: head h reads kv head h / group). */
function attention(q: Float64Array, k: Float64Array[], v: Float64Array[], t: number, c: ModelConfig, r: AttentionRounding): Float64Array {
  const D = c.headDim;
  const group = c.headCount / c.kvHeadCount;
  const scale = 1 / Math.sqrt(D);
  const out = new Float64Array(c.headCount * D);
  const kv = (x: number) => (r.kv ? f16(x) : x);
  for (let h = 0; h < c.headCount; h++) {
    const kvBase = Math.floor(h / group) * D;
    const qh = Array.from(q.subarray(h * D, (h + 1) * D), (x) => (r.q ? f16(x) : x));
    const scores = new Float64Array(t + 1);
    for (let j = 0; j <= t; j++) {
      let dot = 0;
      for (let d = 0; d < D; d++) dot += qh[d] * kv(k[j][kvBase + d]);
      scores[j] = dot * scale;
    }
    const acc = new Float64Array(D);
    if (r.vAccF16) {
      // llama.cpp flash attention, one query row, f16 V: online softmax with an f16 accumulator.
      let M = -Infinity;
      let S = 0;
      for (let j = 0; j <= t; j++) {
        const s = scores[j];
        let ms = 1;
        let vs = 1;
        if (s > M) {
          ms = Math.exp(M - s);
          M = s;
          for (let d = 0; d < D; d++) acc[d] = f16(acc[d] * ms);
        } else {
          vs = Math.exp(s - M);
        }
        for (let d = 0; d < D; d++) acc[d] = f16(acc[d] + kv(v[j][kvBase + d]) * vs);
        S = S * ms + vs;
      }
      for (let d = 0; d < D; d++) acc[d] /= S;
    } else {
      const max = Math.max(...scores);
      let sum = 0;
      for (let j = 0; j <= t; j++) sum += scores[j] = Math.exp(scores[j] - max);
      for (let j = 0; j <= t; j++) {
        const p = r.probs ? f16(scores[j] / sum) : scores[j] / sum;
        for (let d = 0; d < D; d++) acc[d] += p * kv(v[j][kvBase + d]);
      }
    }
    out.set(acc, h * D);
  }
  return out;
}
