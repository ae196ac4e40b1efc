// The OpenAI API on the page's own origin: POST /v1/chat/completions, POST /v1/completions and
// GET /v1/models (and GET /metrics, DELETE /v1/workflows/{id}), answered by one engine inside this Service Worker, so every open tab of the
// origin (and the official `openai` client pointed at `${location.origin}/v1`) shares it and
// their requests are batched together. The model comes from the registration URL's `model`
// parameter (default: the shipped model; relative to the script), its name in requests from the
// `id` parameter (default: the file name), its KV format from `kvFormat` (default f16), and the model is
// kept in Cache Storage: when the browser stops an idle worker, the next request starts the engine
// again from disk. Full KV pages are kept in IndexedDB (the engine's default context store), so a
// conversation continued after such a restart restores its history instead of prefilling it.
//
// Register it with scope '/' (the server sends `Service-Worker-Allowed: /` when the script lives
// elsewhere): navigator.serviceWorker.register('/sw.js?model=/models/x.gguf', { type: 'module', scope: '/' })
/// <reference lib="webworker" />
import * as xgrammar from '@mlc-ai/web-xgrammar';
import xgrammarScriptUrl from 'virtual:wgserve/xgrammar-script';
import { ModelCache, reloadCached } from '../src/browser/model-cache.js';
import { ApiError, createOpenAiHandler, Engine, locateXGrammarScript, provideXGrammar, type OpenAiHandler } from '../src/engine/index.js';
import type { KvFormat } from '../src/model/index.js';

declare const self: ServiceWorkerGlobalScope;

// A Service Worker may not call import(): XGrammar (structured output) comes in statically. The
// instances that replace one a rejected grammar aborted are made from its script, xgrammar.js
// beside this one, fetched (same origin) when the first is needed.
provideXGrammar(xgrammar);
const xgrammarScript = xgrammarScriptUrl();
if (xgrammarScript) locateXGrammarScript(xgrammarScript);

const DEFAULT_MODEL = '/models/wg-tolstoy-q8_0.gguf';
const params = new URL(self.location.href).searchParams;
const modelUrl = new URL(params.get('model') ?? DEFAULT_MODEL, self.location.href).href;
const modelId = params.get('id') ?? undefined;
const kvFormat = (params.get('kvFormat') ?? undefined) as KvFormat | undefined;
let handler: Promise<OpenAiHandler> | null = null;
let engine: Engine | null = null;
/** When this worker's engine started (sent as x-wgserve-engine-started, so a restart shows). */
let engineStarted = 0;

self.addEventListener('install', () => void self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (url.origin !== self.location.origin || !isApiPath(url.pathname)) return;
  event.respondWith(answer(event.request));
});

/**
 * For tests only: a page of this origin posts { type: 'wgserve:lose-device-for-testing' } with a
 * MessagePort; the engine's GPU device is destroyed (lost, as when the browser takes it away), so
 * recovery can be tested with requests in flight. The port gets whether there was a device.
 */
self.addEventListener('message', (event) => {
  if ((event.data as { type?: unknown } | null)?.type !== 'wgserve:lose-device-for-testing') return;
  const device = engine?.model?.rt.gpu.device;
  device?.destroy();
  event.ports[0]?.postMessage(!!device);
});

function isApiPath(path: string): boolean {
  return path.startsWith('/v1/') || path === '/v1' || path === '/metrics';
}

async function answer(request: Request): Promise<Response> {
  const refusal = refuseForeign(request);
  if (refusal) return refusal;
  try {
    const response = await (await engineHandler())(request);
    response.headers.set('x-wgserve-engine-started', String(engineStarted));
    return response;
  } catch (e) {
    handler = null; // a failed start is retried by the next request
    const error = new ApiError(`wgserve could not start its engine: ${(e as Error).message}`, 503, 'engine_unavailable', null, 'engine_start_failed');
    return Response.json(error.toJSON(), { status: 503 });
  }
}

/**
 * Only pages of this origin may use the engine: a request that says it comes from another origin
 * (a cross-site form or navigation into this scope) is refused.
 */
function refuseForeign(request: Request): Response | null {
  const origin = request.headers.get('origin');
  const from = origin ?? (request.referrer ? new URL(request.referrer).origin : null);
  if (!from || from === self.location.origin) return null;
  const error = new ApiError(`requests from ${from} are not served: this engine answers pages of ${self.location.origin} only`, 403, 'invalid_request_error', null, 'forbidden_origin');
  return Response.json(error.toJSON(), { status: 403 });
}

/** The engine starts on the first request after the worker (re)starts. */
function engineHandler(): Promise<OpenAiHandler> {
  handler ??= (async () => {
    const started = new Engine();
    await reloadCached(started, new ModelCache(), modelUrl, { modelId, kvFormat });
    engine = started;
    engineStarted = Date.now();
    return createOpenAiHandler(started, { cors: false, onError: (e) => console.error(`wgserve: ${e.message}`) });
  })();
  return handler;
}
