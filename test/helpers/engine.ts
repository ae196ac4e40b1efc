// An Engine on the shipped model and the test file's GPU runtime, and sampling parameters for
// driving its step loop directly.
import { join } from 'node:path';
import type { SamplingParams, SeqHandle } from '../../src/engine/index.js';
import { createEngine, type Engine, type EngineOptions } from '../../src/index.js';
import { getRuntime } from './gpu.js';
import { REPO } from './shared.js';

export const SHIPPED_MODEL = join(REPO, 'models/wg-tolstoy-q8_0.gguf');

export async function shippedEngine(options: EngineOptions = {}): Promise<Engine> {
  return createEngine({ model: SHIPPED_MODEL, runtime: await getRuntime(), ...options });
}

export function samplingParams(overrides: Partial<SamplingParams> = {}): SamplingParams {
  return {
    maxTokens: 16,
    temperature: 0,
    topK: 0,
    topP: 1,
    minP: 0,
    frequencyPenalty: 0,
    presencePenalty: 0,
    repetitionPenalty: 1,
    logitBias: new Map(),
    seed: 0,
    stopIds: [],
    stopStrings: [],
    ...overrides,
  };
}

export interface Drained {
  tokens: number[];
  text: string;
  reason: string;
}

/** Reads a sequence's events to the end. */
export async function drain(handle: SeqHandle, onToken?: (count: number) => void): Promise<Drained> {
  const out: Drained = { tokens: [], text: '', reason: '' };
  for await (const e of handle.events) {
    out.text += e.text;
    if (e.type === 'token') {
      out.tokens.push(e.tokenId);
      onToken?.(out.tokens.length);
    } else {
      out.reason = e.reason;
    }
  }
  return out;
}
