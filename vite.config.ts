import { execFileSync } from 'node:child_process';
import { defineConfig } from 'vite';

// The WGSL sources are embedded into src/gpu/shaders.generated.ts before every dev server or build.
execFileSync(process.execPath, ['scripts/gen-shaders.mjs']);

export default defineConfig({
  // The shipped model (models/*.gguf) is served as a static file next to the page.
  publicDir: false,
  server: { host: '127.0.0.1', fs: { allow: ['.'] } },
  build: { target: 'es2022', outDir: 'dist/site' },
  worker: { format: 'es' },
});
