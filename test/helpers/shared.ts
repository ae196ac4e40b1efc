// Paths to ../shared (models and llama.cpp goldens). Missing files fail the tests loudly.
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const SHARED = process.env.WGSERVE_SHARED ?? resolve(REPO, '../shared');

export function sharedPath(...parts: string[]): string {
  const p = join(SHARED, ...parts);
  if (!existsSync(p)) throw new Error(`${p} is missing: the tests need ../shared beside the repo (or WGSERVE_SHARED)`);
  return p;
}

export function modelPath(file: string): string {
  return sharedPath('models', file);
}

export interface GoldenCase {
  prompt: string;
  add_bos: boolean;
  parse_special: boolean;
  prompt_tokens: number[];
  greedy_tokens: number[];
  greedy_text: string;
  top_probs: [number, number][][];
  messages?: { role: string; content: string }[];
}

export interface GoldenFile {
  model: string;
  cases: GoldenCase[];
}

export function golden(modelFile: string): GoldenFile {
  return JSON.parse(readFileSync(sharedPath('goldens', modelFile.replace(/\.gguf$/, '.json')), 'utf8')) as GoldenFile;
}

export const GOLDEN_MODELS = [
  'llama-2-tiny-random.gguf',
  'wg-llama-spm-f32.gguf',
  'wg-llama-spm-f16.gguf',
  'wg-llama-spm-q8_0.gguf',
  'wg-llama-spm-q4_0.gguf',
  'wg-llama-spm-q4_k_m.gguf',
  'wg-llama3-bpe-q8_0.gguf',
  'wg-tolstoy-f32.gguf',
  'wg-tolstoy-q8_0.gguf',
];
