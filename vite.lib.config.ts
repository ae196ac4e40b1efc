// The drop-in script: dist/wgserve.js, one file (the engine's worker inlined) that a plain
// <script> tag loads, with dist/xgrammar.js beside it, fetched only when a rejected grammar needs
// it. `npm run build` runs this after the site build.
import { execFileSync } from 'node:child_process';
import { defineConfig } from 'vite';
import { xgrammarScript } from './tools/vite-xgrammar-script.js';

execFileSync(process.execPath, ['scripts/gen-shaders.mjs']);

export default defineConfig({
  publicDir: false,
  // Emitted files' URLs relative to the chunk that names them (xgrammar.js), not to a site root.
  base: './',
  build: {
    target: 'es2022',
    outDir: 'dist',
    emptyOutDir: false,
    lib: { entry: 'src/browser/dropin.ts', name: 'wgserve', formats: ['iife'], fileName: () => 'wgserve.js' },
  },
  // XGrammar (loaded on the first structured request) is inlined into the worker too; its script's
  // text, needed only after a rejected grammar, is dist/xgrammar.js beside (tools/vite-xgrammar-script.ts).
  worker: { format: 'es', plugins: () => [xgrammarScript()], rollupOptions: { output: { inlineDynamicImports: true } } },
});
