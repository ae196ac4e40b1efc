// The drop-in script: dist/wgserve.js, one self-contained file (the engine's worker inlined)
// that a plain <script> tag loads. `npm run build` runs this after the site build.
import { execFileSync } from 'node:child_process';
import { defineConfig } from 'vite';

execFileSync(process.execPath, ['scripts/gen-shaders.mjs']);

export default defineConfig({
  publicDir: false,
  build: {
    target: 'es2022',
    outDir: 'dist',
    emptyOutDir: false,
    lib: { entry: 'src/browser/dropin.ts', name: 'wgserve', formats: ['iife'], fileName: () => 'wgserve.js' },
  },
  // One file: XGrammar (loaded on the first structured request) is inlined into the worker too.
  worker: { format: 'es', rollupOptions: { output: { inlineDynamicImports: true } } },
});
