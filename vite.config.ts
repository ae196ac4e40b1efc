import { execFileSync } from 'node:child_process';
import { defineConfig } from 'vite';
import { xgrammarScript } from './tools/vite-xgrammar-script.js';

// The WGSL sources are embedded into src/gpu/shaders.generated.ts before every dev server or build.
execFileSync(process.execPath, ['scripts/gen-shaders.mjs']);

export default defineConfig(({ command }) => ({
  // Where the demo page finds the Service Worker: the built sw.js beside it, or the dev server's source.
  define: { __SERVICE_WORKER__: JSON.stringify(command === 'build' ? 'sw.js' : '/workers/service-worker.ts') },
  // The shipped model (models/*.gguf) is served as a static file next to the page.
  // XGrammar's script as one file of its own, xgrammar.js, for the SW and the worker (tools/vite-xgrammar-script.ts).
  plugins: [xgrammarScript()],
  publicDir: false,
  // Relative URLs in the built site, so dist/site works from any folder of any static host.
  base: './',
  // Pages are real files (index.html, test pages); an unknown path is a 404, not index.html.
  appType: 'mpa',
  // The Service Worker (workers/service-worker.ts) serves /v1/* for the whole origin.
  server: { host: '127.0.0.1', fs: { allow: ['.'] }, headers: { 'Service-Worker-Allowed': '/' } },
  build: {
    target: 'es2022',
    outDir: 'dist/site',
    rollupOptions: {
      // The Service Worker is built as sw.js beside index.html: its default scope is then the
      // site's folder, so a plain static host (no Service-Worker-Allowed header) can serve it.
      input: { index: 'index.html', sw: 'workers/service-worker.ts' },
      output: { entryFileNames: (chunk) => (chunk.name === 'sw' ? 'sw.js' : 'assets/[name]-[hash].js') },
    },
  },
  worker: { format: 'es', plugins: () => [xgrammarScript()] },
}));
