import { execFileSync } from 'node:child_process';
import { defineConfig } from 'vitest/config';

// Shaders are embedded from shaders/*.wgsl before any test imports them.
execFileSync(process.execPath, ['scripts/gen-shaders.mjs']);

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    // One GPU device per worker; SwiftShader uses every core on its own, so run files one at a time.
    fileParallelism: false,
    pool: 'forks',
  },
});
