// The engine in a Web Worker: GPU work, tokenization and the step loop stay off the page's main
// thread. The page talks to it through createWorkerEngine (src/browser/worker-engine.ts).
import { expose } from 'comlink';
import xgrammarScriptUrl from 'virtual:wgserve/xgrammar-script';
import { EngineHost } from '../src/browser/engine-host.js';
import { locateXGrammarScript } from '../src/engine/index.js';

// XGrammar's script (for instances that replace aborted ones) is xgrammar.js beside the build;
// a worker inlined from a blob: URL has no such place, and its page passes one (xgrammarScript).
const xgrammarScript = xgrammarScriptUrl();
if (xgrammarScript) locateXGrammarScript(xgrammarScript);

expose(new EngineHost());
