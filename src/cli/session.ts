// Opens the GPU and a model (or a whole engine) for a CLI command, and closes them (dawn.node must
// not exit with a live device).
import { fileURLToPath } from 'node:url';
import { Engine, type EngineOptions } from '../engine/index.js';
import { GpuRuntime } from '../gpu/index.js';
import { Model, type Numerics } from '../model/index.js';

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

/** Loads `options.model` (default: the shipped model) into an engine, runs `body`, destroys the engine. */
export async function withEngine<T>(options: EngineOptions, body: (engine: Engine) => Promise<T>): Promise<T> {
  const engine = new Engine(options);
  try {
    // Loaded inside the try: a load that fails after opening the GPU must still close it.
    await engine.reload(options.model ?? DEFAULT_MODEL);
    return await body(engine);
  } finally {
    await engine.destroy();
  }
}

/** --numerics: the kernel set ('fast', the default, or 'llama.cpp' for llama.cpp's CPU arithmetic bit for bit). */
export function parseNumerics(value: string | undefined): Numerics | undefined {
  if (value === undefined) return undefined;
  if (value !== 'fast' && value !== 'llama.cpp') throw new Error(`--numerics must be fast or llama.cpp, not ${JSON.stringify(value)}`);
  return value;
}

export interface NumberRange {
  integer?: boolean;
  min?: number;
  max?: number;
}

export function parseNumber(value: string | undefined, name: string, fallback: number, range: NumberRange = {}): number {
  if (value === undefined) return fallback;
  const n = value.trim() === '' ? NaN : Number(value);
  const kind = range.integer ? 'an integer' : 'a number';
  const bounds = [range.min !== undefined && `>= ${range.min}`, range.max !== undefined && `<= ${range.max}`].filter(Boolean).join(' and ');
  const ok = Number.isFinite(n) && (!range.integer || Number.isInteger(n)) &&
    (range.min === undefined || n >= range.min) && (range.max === undefined || n <= range.max);
  if (!ok) throw new Error(`--${name} must be ${kind}${bounds ? ' ' + bounds : ''}, got "${value}"`);
  return n;
}
