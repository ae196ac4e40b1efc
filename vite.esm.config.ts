// The ES module build for bundlers (package.json "exports"): the engine, the browser side, and
// the two workers as entries; dependencies stay imports. Types come from tsconfig.build.json.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { defineConfig } from 'vite';
import { xgrammarScript } from './tools/vite-xgrammar-script.js';

execFileSync(process.execPath, ['scripts/gen-shaders.mjs']);
const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { dependencies: Record<string, string> };
const external = [/^node:/, ...Object.keys(pkg.dependencies).map((d) => new RegExp(`^${d}(/|$)`))];

export default defineConfig({
  // workers/*.ts find XGrammar's script as xgrammar.js beside them (tools/vite-xgrammar-script.ts).
  plugins: [xgrammarScript()],
  worker: { plugins: () => [xgrammarScript()] },
  publicDir: false,
  // Emitted files' URLs relative to the chunk that names them (xgrammar.js), not to a site root.
  base: './',
  build: {
    target: 'es2022',
    outDir: 'dist/esm',
    lib: {
      entry: {
        index: 'src/index.ts',
        browser: 'src/browser/index.ts',
        'prompt-api': 'src/prompt-api/index.ts',
        'engine.worker': 'workers/engine.worker.ts',
        'service-worker': 'workers/service-worker.ts',
      },
      formats: ['es'],
    },
    rollupOptions: { external },
  },
});
