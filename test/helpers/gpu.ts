// One GPU runtime per test file (SwiftShader in CI), created lazily and destroyed after the file.
import { afterAll, onTestFinished } from 'vitest';
import { GpuRuntime } from '../../src/gpu/index.js';

let runtime: Promise<GpuRuntime> | null = null;

// Registered when a test file imports this helper. A device still alive at process exit
// crashes dawn.node, so every file destroys the one it made.
afterAll(async () => {
  if (runtime) (await runtime).destroy();
  runtime = null;
});

export function getRuntime(): Promise<GpuRuntime> {
  runtime ??= GpuRuntime.create();
  return runtime;
}

export { rng, randomF32, maxAbsDiff } from './random.js';

/** Sets the runtime's kernel shapes (GPU or CPU adapter) for the rest of the current test. */
export function useShapes(rt: GpuRuntime, softwareShapes: boolean): void {
  const saved = rt.softwareShapes;
  rt.softwareShapes = softwareShapes;
  onTestFinished(() => void (rt.softwareShapes = saved));
}

/** Both kernel shapes, named for test titles. */
export const KERNEL_SHAPES = [
  { name: 'GPU shapes', software: false },
  { name: 'CPU-adapter shapes', software: true },
] as const;
