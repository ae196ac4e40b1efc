// The OpenAI HTTP API over the Fetch API's Request and Response, so one handler serves both the
// Node server (through an http adapter) and a browser Service Worker: chat and text completions
// (JSON, or server-sent events when the request streams), the model list and a health check, with
// CORS like llama.cpp's server. Errors go out in OpenAI's shape, { error: { message, type, ... } }.
import type { Engine } from './engine.js';
import { ApiError } from './errors.js';
import type { ChatCompletionRequestBase, CompletionCreateParamsBase, SessionCreateRequest } from './protocol.js';
import { prometheusText, PROMETHEUS_CONTENT_TYPE } from './prometheus.js';
import { SSE_HEADERS, sseStream } from './sse.js';

export interface OpenAiHandlerOptions {
  /** Answer cross-origin requests and preflights, like llama.cpp's server (default true). */
  cors?: boolean;
  /** Server errors (status 500), and errors raised after a stream began, for logging. */
  onError?: (error: ApiError, request: Request) => void;
  /** Largest request body read, in bytes (default 16 MiB); a larger one gets a 413 before it is read. */
  maxBodyBytes?: number;
}

const DEFAULT_MAX_BODY_BYTES = 16 * 2 ** 20;

export type OpenAiHandler = (request: Request) => Promise<Response>;

type Method = 'GET' | 'POST' | 'HEAD' | 'DELETE';
type Route = (request: Request) => Promise<Response> | Response;
type ErrorListener = (error: ApiError, request: Request) => void;

export function createOpenAiHandler(engine: Engine, options: OpenAiHandlerOptions = {}): OpenAiHandler {
  const cors = options.cors ?? true;
  const routes = new OpenAiRoutes(engine, (error, request) => options.onError?.(error, request), options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES);
  return async (request) => {
    const response = cors && request.method === 'OPTIONS' ? preflight(request) : await routes.answer(request);
    if (cors) response.headers.set('access-control-allow-origin', '*');
    return response;
  };
}

class OpenAiRoutes {
  private readonly routes: Readonly<Record<string, Partial<Record<Method, Route>>>> = {
    '/v1/chat/completions': { POST: (r) => this.completion(r, (body, signal) => this.engine.chat.completions.create(body as ChatCompletionRequestBase, { signal })) },
    '/v1/completions': { POST: (r) => this.completion(r, (body, signal) => this.engine.completions.create(body as CompletionCreateParamsBase, { signal })) },
    '/v1/models': { GET: async () => json(await this.engine.models.list()) },
    '/v1/sessions': { POST: async (r) => json(await this.engine.sessions.create((await readJsonObject(r, this.maxBodyBytes)) as SessionCreateRequest, { signal: r.signal })) },
    '/health': { GET: () => health(this.engine) },
    '/metrics': { GET: () => metrics(this.engine) },
  };

  constructor(private readonly engine: Engine, private readonly onError: ErrorListener, private readonly maxBodyBytes: number) {}

  async answer(request: Request): Promise<Response> {
    try {
      const path = new URL(request.url).pathname.replace(/(.)\/+$/, '$1');
      const methods = this.match(path);
      if (!methods) return notFound(request, path);
      // HEAD is GET without the body, wherever GET is answered.
      const head = request.method === 'HEAD' && methods.GET !== undefined;
      const route = head ? methods.GET : methods[request.method as Method];
      if (!route) return methodNotAllowed(request, path, allowedMethods(methods));
      const response = await route(request);
      return head ? new Response(null, { status: response.status, headers: response.headers }) : response;
    } catch (e) {
      const error = ApiError.from(e);
      // A client that went away is not a server error worth reporting.
      if (error.status >= 500 && !request.signal.aborted) this.onError(error, request);
      return errorResponse(error);
    }
  }

  private match(path: string): Partial<Record<Method, Route>> | undefined {
    const sessions = '/v1/sessions/';
    if (path.startsWith(sessions) && path.length > sessions.length) return this.sessionRoutes(path.slice(sessions.length));
    const workflows = '/v1/workflows/';
    if (path.startsWith(workflows) && path.length > workflows.length) {
      const id = decodePathPart(path.slice(workflows.length));
      return { DELETE: () => this.endWorkflow(id) };
    }
    const prefix = '/v1/models/';
    if (this.routes[path] || !path.startsWith(prefix)) return this.routes[path];
    const id = decodePathPart(path.slice(prefix.length));
    return { GET: () => this.modelCard(id) };
  }

  /** Runs one completion; the generation stops when the client goes away, mid-stream or before. */
  private async completion(request: Request, create: Create): Promise<Response> {
    const body = await readJsonObject(request, this.maxBodyBytes);
    const abort = abortFollowing(request.signal);
    const result = await create(body, abort.signal);
    if (!isAsyncIterable(result)) return json(result);
    const stream = sseStream(result, { onCancel: () => abort.abort(), onError: (error) => this.onError(error, request) });
    return new Response(stream, { headers: SSE_HEADERS });
  }

  /** Ends a workflow (its kept KV goes back to plain LRU; its completion time is recorded). */
  private async endWorkflow(id: string): Promise<Response> {
    if (!(await this.engine.workflows.end(id))) {
      return errorResponse(new ApiError(`No open workflow with id ${JSON.stringify(id)}`, 404, 'not_found_error', 'workflow_id', 'workflow_not_found'));
    }
    return json({ id, object: 'workflow.deleted', deleted: true });
  }

  /** /v1/sessions/{id}: GET retrieves, DELETE destroys; /v1/sessions/{id}/clone: POST clones. */
  private sessionRoutes(rest: string): Partial<Record<Method, Route>> {
    const clone = rest.endsWith('/clone');
    const id = decodePathPart(clone ? rest.slice(0, -'/clone'.length) : rest);
    if (clone) return { POST: async () => json(await this.engine.sessions.clone(id)) };
    return {
      GET: async () => json(await this.engine.sessions.retrieve(id)),
      DELETE: async () => {
        if (!(await this.engine.sessions.destroy(id))) throw ApiError.sessionNotFound(id);
        return json({ id, object: 'session.deleted', deleted: true });
      },
    };
  }

  private async modelCard(id: string): Promise<Response> {
    const card = (await this.engine.models.list()).data.find((m) => m.id === id);
    return card ? json(card) : errorResponse(ApiError.modelNotFound(id, this.engine.modelId));
  }
}

type Create = (body: object, signal: AbortSignal) => Promise<object | AsyncIterable<unknown>>;

async function readJsonObject(request: Request, maxBytes: number): Promise<object> {
  const text = await readBodyText(request, maxBytes);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch (e) {
    throw ApiError.invalid(null, `The request body is not valid JSON: ${(e as Error).message}`, 'invalid_json');
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw ApiError.invalid(null, 'The request body must be a JSON object', 'invalid_json');
  }
  return body;
}

/** The body as text, refused (413) past `maxBytes` whether or not the client said its length. */
async function readBodyText(request: Request, maxBytes: number): Promise<string> {
  const tooLarge = () => new ApiError(`The request body is larger than ${maxBytes} bytes`, 413, 'invalid_request_error', null, 'body_too_large');
  const declared = Number(request.headers.get('content-length') ?? NaN);
  if (declared > maxBytes) throw tooLarge();
  if (!request.body) return '';
  const reader = request.body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  let bytes = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    bytes += value.byteLength;
    if (bytes > maxBytes) {
      await reader.cancel().catch(() => {});
      throw tooLarge();
    }
    text += decoder.decode(value, { stream: true });
  }
  return text + decoder.decode();
}

function allowedMethods(methods: Partial<Record<Method, Route>>): string[] {
  const allowed: string[] = Object.keys(methods);
  return methods.GET ? [...allowed, 'HEAD'] : allowed;
}

/** An AbortController that also aborts when `signal` does (the request's: the client left). */
function abortFollowing(signal: AbortSignal): AbortController {
  const controller = new AbortController();
  if (signal.aborted) controller.abort(signal.reason);
  else signal.addEventListener('abort', () => controller.abort(signal.reason), { once: true });
  return controller;
}

function decodePathPart(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

function isAsyncIterable(value: object): value is AsyncIterable<unknown> {
  return Symbol.asyncIterator in value;
}

/**
 * llama.cpp's /health answer, plus what is running (an idle server has no sequences and no KV
 * pages in use; pages the prefix cache keeps are `cached`) and what has been served.
 */
function health(engine: Engine): Response {
  const core = engine.core;
  if (!core) return json({ status: 'unavailable', ...ApiError.notLoaded().toJSON() }, 503);
  const failure = core.failureReason;
  if (failure) return json({ status: 'error', ...ApiError.unavailable(failure).toJSON() }, 503);
  const { usedPages, cachedPages, totalPages } = core.kv.pool;
  const served = core.metrics.snapshot();
  return json({
    status: 'ok',
    model: engine.modelId,
    active_sequences: core.activeCount,
    kv_pages: { used: usedPages, cached: cachedPages, total: totalPages },
    // Lost GPU devices the engine replaced (recovering: the loss it is recovering from now).
    device_recoveries: core.recoveries,
    ...(core.recoveringFrom ? { recovering: core.recoveringFrom } : {}),
    served: {
      sequences: served.requests, prompt_tokens: served.promptTokens, cached_prompt_tokens: served.cachedPromptTokens, generated_tokens: served.generatedTokens,
    },
  });
}

/** The engine's metrics in Prometheus text format (503 with no model loaded). */
function metrics(engine: Engine): Response {
  if (!engine.core) return json(ApiError.notLoaded().toJSON(), 503);
  return new Response(prometheusText(engine.metrics(), engine.modelId ?? ''), { headers: { 'content-type': PROMETHEUS_CONTENT_TYPE } });
}

function preflight(request: Request): Response {
  return new Response(null, {
    status: 204,
    headers: {
      'access-control-allow-methods': 'GET, HEAD, POST, DELETE, OPTIONS',
      // A wildcard does not cover Authorization (which OpenAI's clients send), so echo what was asked.
      'access-control-allow-headers': request.headers.get('access-control-request-headers') ?? '*',
      'access-control-max-age': '86400',
    },
  });
}

function notFound(request: Request, path: string): Response {
  return errorResponse(new ApiError(`Unknown request URL: ${request.method} ${path}`, 404, 'not_found_error', null, 'unknown_url'));
}

function methodNotAllowed(request: Request, path: string, allowed: string[]): Response {
  const error = new ApiError(`Method ${request.method} is not allowed on ${path}; use ${allowed.join(' or ')}`, 405, 'invalid_request_error', null, 'method_not_allowed');
  const response = errorResponse(error);
  response.headers.set('allow', allowed.join(', '));
  return response;
}

function errorResponse(error: ApiError): Response {
  const response = json(error.toJSON(), error.status);
  if (error.retryAfter !== undefined) response.headers.set('retry-after', String(error.retryAfter));
  return response;
}

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
}
