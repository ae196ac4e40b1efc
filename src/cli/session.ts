// Opens the GPU and a model for a CLI command, and closes both (dawn.node must not exit with a live device).
import { fileURLToPath } from 'node:url';
import { GpuRuntime } from '../gpu/index.js';
import { Model } from '../model/index.js';

export const DEFAULT_MODEL = fileURLToPath(new URL('../../models/wg-tolstoy-q8_0.gguf', import.meta.url));

export async function withModel<T>(path: string | undefined, body: (model: Model) => Promise<T>): Promise<T> {
  const rt = await GpuRuntime.create({ log: (line) => console.error(line) });
  let model: Model | undefined;
  try {
    model = await Model.load(rt, path ?? DEFAULT_MODEL);
    return await body(model);
  } finally {
    model?.destroy();
    rt.destroy();
  }
}

export function parseNumber(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n)) throw new Error(`--${name} must be a number, got "${value}"`);
  return n;
}
