// Models fetched from a URL are kept in the browser's Cache Storage, so a reload (or a Service
// Worker brought back after the browser stopped it) reads them from disk instead of the network.
// A download is written to the cache while the loader streams it to the GPU (one fetch, tee'd);
// only a complete download is kept, and a file that fails to load is dropped again.
import type { Engine, EngineOptions } from '../engine/index.js';
import { fetchModel } from '../model/index.js';

export interface CachedModel {
  url: string;
  /** Size in bytes, when the server said. */
  bytes: number | null;
}

export interface OpenedModel {
  /** The model's bytes as a Response (from the cache, or the network stream being cached). */
  response: Response;
  fromCache: boolean;
  /** Settles when the download is in the cache (or failed to be: quota, abort); never rejects. */
  stored: Promise<{ ok: boolean; error?: string }>;
}

export const MODEL_CACHE_NAME = 'wgserve-models';

export class ModelCache {
  constructor(readonly cacheName = MODEL_CACHE_NAME) {}

  /** Whether this context has Cache Storage (pages and workers of a secure origin do). */
  static get available(): boolean {
    return typeof caches !== 'undefined';
  }

  /** The model at `url`, from the cache when it is there; otherwise fetched and cached on the way. */
  async open(url: string, signal?: AbortSignal, idleTimeoutMs?: number): Promise<OpenedModel> {
    const cache = await caches.open(this.cacheName);
    const hit = await cache.match(url);
    if (hit) return { response: named(hit, url), fromCache: true, stored: Promise.resolve({ ok: true }) };
    const response = await fetchModel(url, { signal, idleTimeoutMs });
    if (!response.body) return { response, fromCache: false, stored: Promise.resolve({ ok: false, error: 'no body' }) };
    const [forLoader, forCache] = response.body.tee();
    const headers = new Headers(response.headers);
    const stored = cache.put(url, new Response(forCache, { headers })).then(
      () => ({ ok: true }),
      (e: Error) => ({ ok: false, error: `${url} was not cached (${e.name}: ${e.message})` }),
    );
    return { response: named(new Response(forLoader, { headers }), url), fromCache: false, stored };
  }

  /** The cached model at `url`; throws if it is not in the cache (nothing is downloaded). */
  async cached(url: string): Promise<Response> {
    const hit = await (await caches.open(this.cacheName)).match(url);
    if (!hit) throw new Error(`${url} is not in Cache Storage (${this.cacheName}), and reading it again would download it`);
    return named(hit, url);
  }

  async list(): Promise<CachedModel[]> {
    const cache = await caches.open(this.cacheName);
    const out: CachedModel[] = [];
    for (const request of await cache.keys()) {
      const length = (await cache.match(request))?.headers.get('content-length');
      out.push({ url: request.url, bytes: length ? Number(length) : null });
    }
    return out;
  }

  /** Removes a cached model; false if it was not cached. */
  async delete(url: string): Promise<boolean> {
    return (await caches.open(this.cacheName)).delete(url);
  }
}

/** Loads the model at `url` into `engine` through the cache; a file that fails to load is not kept. */
export async function reloadCached(engine: Engine, cache: ModelCache, url: string, options: EngineOptions = {}): Promise<void> {
  const opened = await cache.open(url, options.signal, options.downloadIdleTimeoutMs);
  try {
    // A lost GPU device is recovered from with the cached copy, never a new download.
    await engine.reload(opened.response, { ...options, reopenModel: () => cache.cached(url) });
  } catch (e) {
    await opened.stored;
    await cache.delete(url);
    throw e;
  }
  const stored = await opened.stored;
  if (!stored.ok) console.warn(`wgserve: ${stored.error}`);
}

/** A Response built from a stream has no url; give it the model's, which errors then name. */
function named(response: Response, url: string): Response {
  if (!response.url) Object.defineProperty(response, 'url', { value: url });
  return response;
}
