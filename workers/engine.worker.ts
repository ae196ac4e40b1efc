// The engine in a Web Worker: GPU work, tokenization and the step loop stay off the page's main
// thread. The page talks to it through createWorkerEngine (src/browser/worker-engine.ts).
import { expose } from 'comlink';
import { EngineHost } from '../src/browser/engine-host.js';

expose(new EngineHost());
