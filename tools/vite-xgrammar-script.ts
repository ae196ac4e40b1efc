// A Vite plugin: XGrammar's script (@mlc-ai/web-xgrammar/lib/index.js) as one file of its own,
// `xgrammar.js` beside the build's output, fetched only when the engine needs a fresh XGrammar
// instance (after a rejected grammar aborted one; see src/engine/grammar/xgrammar.ts).
//
// `import xgrammarScriptUrl from 'virtual:wgserve/xgrammar-script'` gives a function returning
// the file's absolute URL, resolved against the importing chunk (null where that chunk has no
// usable URL, as in a worker inlined from a blob: URL). The dev server serves the file as is.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Plugin } from 'vite';

const ID = 'virtual:wgserve/xgrammar-script';
const RESOLVED = `\0${ID}`;
const FILE_NAME = 'xgrammar.js';
const DEV_PATH = `/@wgserve/${FILE_NAME}`;

function scriptPath(): string {
  return createRequire(import.meta.url).resolve('@mlc-ai/web-xgrammar');
}

export function xgrammarScript(): Plugin {
  let serving = false;
  return {
    name: 'wgserve:xgrammar-script',
    configResolved(config) {
      serving = config.command === 'serve';
    },
    configureServer(server) {
      server.middlewares.use(DEV_PATH, (_req, res) => {
        res.setHeader('content-type', 'text/javascript');
        res.end(readFileSync(scriptPath()));
      });
    },
    resolveId(id) {
      return id === ID ? RESOLVED : null;
    },
    load(id) {
      if (id !== RESOLVED) return null;
      const url = serving
        ? `new URL(${JSON.stringify(DEV_PATH)}, self.location.href).href` // not import.meta.url: Vite would rewrite that pattern
        : `import.meta.ROLLUP_FILE_URL_${this.emitFile({ type: 'asset', fileName: FILE_NAME, source: readFileSync(scriptPath()) })}`;
      return `export default function xgrammarScriptUrl() {\n  try { return ${url}; } catch { return null; }\n}\n`;
    },
  };
}
