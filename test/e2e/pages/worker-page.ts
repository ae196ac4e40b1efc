// Test page: the engine in a Web Worker, driven from the page (test/e2e/worker.test.ts calls the
// functions on window through Playwright).
import { wrap } from 'comlink';
import { createWorkerEngine, type WorkerEngine } from '../../../src/browser/index.js';
import type { EngineHost, WorkerEngineOptions } from '../../../src/browser/engine-host.js';
import type { InitProgressReport } from '../../../src/engine/index.js';

const MODEL_URL = new URL('../../../models/wg-tolstoy-q8_0.gguf', import.meta.url).href;

interface StreamResult {
  text: string;
  chunks: number;
  finishReason: string | null;
  /** Main-thread timer callbacks that ran between the first and the last chunk. */
  ticksDuringStream: number;
}

declare global {
  interface Window {
    wg: {
      progress: InitProgressReport[];
      engine: WorkerEngine | null;
      load(url?: string, options?: WorkerEngineOptions): Promise<string>;
      loadError(url: string): Promise<string>;
      cached(): Promise<string[]>;
      chat(content: string, maxTokens: number): Promise<string>;
      stream(content: string, maxTokens: number, abortAfter?: number): Promise<StreamResult>;
      error(request: unknown): Promise<{ status: number; param: string | null; message: string }>;
      stats(): Promise<string>;
      streamWithDeviceLoss(prompts: string[], maxTokens: number, lossAfter: number): Promise<{ text: string; finishReason: string | null }[]>;
    };
  }
}

window.wg = {
  progress: [],
  engine: null,
  async load(url = MODEL_URL, options = {}) {
    const worker = new Worker(new URL('../../../workers/engine.worker.ts', import.meta.url), { type: 'module' });
    window.wg.engine = await createWorkerEngine({ ...options, worker, model: url, initProgressCallback: (r) => window.wg.progress.push(r) });
    document.getElementById('status')!.textContent = 'ready';
    return window.wg.engine.modelId ?? '';
  },
  async loadError(url) {
    try {
      await window.wg.engine!.reload(url);
      return 'loaded';
    } catch (e) {
      return (e as Error).message;
    }
  },
  async cached() {
    return (await window.wg.engine!.cachedModels()).map((m) => m.url);
  },
  async chat(content, maxTokens) {
    const r = await window.wg.engine!.chat.completions.create({ messages: [{ role: 'user', content }], temperature: 0, max_tokens: maxTokens });
    return r.choices[0].message.content ?? '';
  },
  async stream(content, maxTokens, abortAfter) {
    const controller = new AbortController();
    let ticks = 0;
    let counting = false;
    const timer = setInterval(() => counting && ticks++, 1);
    const result: StreamResult = { text: '', chunks: 0, finishReason: null, ticksDuringStream: 0 };
    try {
      const chunks = await window.wg.engine!.chat.completions.create(
        { messages: [{ role: 'user', content }], temperature: 0, max_tokens: maxTokens, stream: true },
        { signal: controller.signal },
      );
      for await (const chunk of chunks) {
        counting = true;
        result.chunks++;
        result.text += chunk.choices[0]?.delta.content ?? '';
        result.finishReason = chunk.choices[0]?.finish_reason ?? result.finishReason;
        if (result.chunks === abortAfter) controller.abort();
        if (!result.finishReason) result.ticksDuringStream = ticks;
      }
    } finally {
      clearInterval(timer);
    }
    return result;
  },
  async error(request) {
    try {
      await window.wg.engine!.chat.completions.create(request as never);
      return { status: 0, param: null, message: 'no error' };
    } catch (e) {
      const err = e as { status: number; param: string | null; message: string };
      return { status: err.status, param: err.param, message: err.message };
    }
  },
  stats() {
    return window.wg.engine!.runtimeStatsText();
  },
  /** Streams greedy chats at once; the worker's GPU device is destroyed once the first has `lossAfter` chunks. */
  async streamWithDeviceLoss(prompts, maxTokens, lossAfter) {
    const engine = window.wg.engine!;
    const host = wrap<EngineHost>(engine.worker);
    let lost: Promise<boolean> | null = null;
    const results = await Promise.all(prompts.map(async (content, i) => {
      const out = { text: '', finishReason: null as string | null };
      let chunks = 0;
      const stream = await engine.chat.completions.create({ messages: [{ role: 'user', content }], temperature: 0, max_tokens: maxTokens, stream: true });
      for await (const chunk of stream) {
        out.text += chunk.choices[0]?.delta.content ?? '';
        out.finishReason = chunk.choices[0]?.finish_reason ?? out.finishReason;
        if (i === 0 && ++chunks === lossAfter) lost = host.loseDeviceForTesting();
      }
      return out;
    }));
    if (!(await lost)) throw new Error('the device was not lost: the first stream ended too early');
    return results;
  },
};
