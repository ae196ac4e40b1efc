// The OpenAI HTTP handler's framing and error mapping, against a stand-in engine that returns
// canned results: SSE events and [DONE], an error raised mid-stream, ApiError statuses, malformed
// bodies, routes, methods, CORS, and aborts reaching the engine. How the real engine answers is
// tested end to end in test/e2e/server.test.ts.
import { describe, expect, it, vi } from 'vitest';
import type { Engine, RequestOptions } from '../../src/engine/index.js';
import { ApiError } from '../../src/engine/errors.js';
import { createOpenAiHandler, type OpenAiHandlerOptions } from '../../src/engine/http.js';

type Create = (body: unknown, options: RequestOptions) => Promise<unknown>;

/** Only what the handler touches; chat and text completions share one `create`. */
function fakeEngine(create: Create, loaded = true): Engine {
  const modelId = loaded ? 'fake-model' : null;
  const data = loaded ? [{ id: 'fake-model', object: 'model', created: 0, owned_by: 'wgserve' }] : [];
  return {
    chat: { completions: { create } },
    completions: { create },
    models: { list: async () => ({ object: 'list', data }) },
    modelId,
    core: null,
  } as unknown as Engine;
}

function handlerFor(create: Create, options: OpenAiHandlerOptions = {}) {
  return createOpenAiHandler(fakeEngine(create), options);
}

function post(path: string, body: string, init: RequestInit = {}): Request {
  return new Request(`http://localhost${path}`, { method: 'POST', body, headers: { 'content-type': 'application/json' }, ...init });
}

async function* chunks<T>(items: T[], thenThrow?: Error): AsyncGenerator<T> {
  for (const item of items) yield item;
  if (thenThrow) throw thenThrow;
}

describe('createOpenAiHandler: streams', () => {
  it('frames each chunk as `data: {json}\\n\\n` and ends with `data: [DONE]\\n\\n`', async () => {
    const handler = handlerFor(async () => chunks([{ n: 1 }, { text: 'a\nb' }]));
    const response = await handler(post('/v1/chat/completions', '{"stream":true}'));
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(await response.text()).toBe('data: {"n":1}\n\ndata: {"text":"a\\nb"}\n\ndata: [DONE]\n\n');
  });

  it('an error after the stream began: a last `data: {"error": ...}` event, no [DONE], reported to onError', async () => {
    const onError = vi.fn();
    const handler = handlerFor(async () => chunks([{ n: 1 }], new Error('device lost')), { onError });
    const text = await (await handler(post('/v1/completions', '{}'))).text();
    const events = text.split('\n\n').filter(Boolean);
    expect(events).toHaveLength(2);
    expect(JSON.parse(events[1].replace(/^data: /, ''))).toEqual({ error: { message: 'device lost', type: 'server_error', param: null, code: null } });
    expect(onError).toHaveBeenCalledOnce();
  });

  it('cancelling the body aborts the request signal the engine was given, and ends the iterator', async () => {
    let signal: AbortSignal | undefined;
    let returned = false;
    const endless = {
      [Symbol.asyncIterator]: () => ({
        next: async () => ({ value: { tick: true }, done: false }),
        return: async () => ((returned = true), { value: undefined, done: true }),
      }),
    };
    const handler = handlerFor(async (_, options) => ((signal = options.signal), endless));
    const reader = (await handler(post('/v1/chat/completions', '{}'))).body!.getReader();
    await reader.read();
    await reader.cancel();
    expect(signal?.aborted).toBe(true);
    expect(returned).toBe(true);
  });

  it("the Request's signal (the client left) aborts the engine's", async () => {
    const client = new AbortController();
    let signal: AbortSignal | undefined;
    const handler = handlerFor(async (_, options) => ((signal = options.signal), { object: 'chat.completion' }));
    await handler(post('/v1/chat/completions', '{}', { signal: client.signal }));
    expect(signal?.aborted).toBe(false);
    client.abort();
    expect(signal?.aborted).toBe(true);
  });
});

describe('createOpenAiHandler: errors', () => {
  async function errorOf(response: Response): Promise<{ status: number; error: ReturnType<ApiError['toJSON']>['error'] }> {
    return { status: response.status, error: ((await response.json()) as ReturnType<ApiError['toJSON']>).error };
  }

  it('an ApiError from the engine: its status and toJSON()', async () => {
    const handler = handlerFor(async () => {
      throw ApiError.invalid('temperature', 'temperature must be a number');
    });
    expect(await errorOf(await handler(post('/v1/chat/completions', '{}')))).toEqual({
      status: 400,
      error: { message: 'temperature must be a number', type: 'invalid_request_error', param: 'temperature', code: null },
    });
  });

  it('any other error: 500 server_error, reported to onError', async () => {
    const onError = vi.fn();
    const handler = handlerFor(async () => {
      throw new TypeError('boom');
    }, { onError });
    expect(await errorOf(await handler(post('/v1/completions', '{}')))).toMatchObject({ status: 500, error: { type: 'server_error', message: 'boom' } });
    expect(onError).toHaveBeenCalledOnce();
  });

  it.each([['{"messages": ['], [''], ['[1, 2]'], ['null']])('body %j: 400 invalid_request_error, the engine is not called', async (body) => {
    const create = vi.fn();
    const { status, error } = await errorOf(await handlerFor(create)(post('/v1/chat/completions', body)));
    expect(status).toBe(400);
    expect(error.type).toBe('invalid_request_error');
    expect(create).not.toHaveBeenCalled();
  });

  it('an unknown route: 404; a wrong method: 405 with Allow', async () => {
    const handler = handlerFor(vi.fn());
    expect(await errorOf(await handler(new Request('http://localhost/v1/embeddings')))).toMatchObject({ status: 404, error: { type: 'not_found_error' } });
    const wrong = await handler(new Request('http://localhost/v1/chat/completions'));
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toBe('POST');
    expect((await handler(post('/v1/models', '{}'))).status).toBe(405);
  });

  it('/health without a loaded model: 503', async () => {
    const handler = createOpenAiHandler(fakeEngine(vi.fn(), false));
    const response = await handler(new Request('http://localhost/health'));
    expect(response.status).toBe(503);
    expect(await response.json()).toMatchObject({ status: 'unavailable', error: { code: 'model_not_loaded' } });
  });
});

describe('createOpenAiHandler: limits and failures', () => {
  it('a 429 from the engine carries Retry-After', async () => {
    const handler = handlerFor(async () => {
      throw ApiError.queueFull(256, 4, 256);
    });
    const response = await handler(post('/v1/completions', '{"prompt": "x"}'));
    expect(response.status).toBe(429);
    expect(response.headers.get('retry-after')).toBe('1');
    expect(await response.json()).toMatchObject({ error: { type: 'rate_limit_error', code: 'queue_full' } });
  });

  it('a body larger than maxBodyBytes: 413, the engine is not called', async () => {
    const create = vi.fn();
    const handler = handlerFor(create, { maxBodyBytes: 1000 });
    const response = await handler(post('/v1/completions', JSON.stringify({ prompt: 'x'.repeat(5000) })));
    expect(response.status).toBe(413);
    expect(await response.json()).toMatchObject({ error: { code: 'body_too_large' } });
    expect(create).not.toHaveBeenCalled();
  });

  it('HEAD is answered wherever GET is, without a body; Allow lists it', async () => {
    const handler = handlerFor(vi.fn());
    for (const path of ['/v1/models', '/v1/models/fake-model', '/health']) {
      const head = await handler(new Request(`http://localhost${path}`, { method: 'HEAD' }));
      const get = await handler(new Request(`http://localhost${path}`));
      expect(head.status, path).toBe(get.status);
      expect(head.headers.get('content-type')).toBe(get.headers.get('content-type'));
      expect(await head.text()).toBe('');
    }
    expect((await handler(new Request('http://localhost/v1/completions', { method: 'HEAD' }))).status).toBe(405);
    expect((await handler(new Request('http://localhost/v1/models', { method: 'DELETE' }))).headers.get('allow')).toBe('GET, HEAD');
  });

  it('/health of an engine that cannot serve: 503 with the reason', async () => {
    const engine = fakeEngine(vi.fn());
    Object.assign(engine, { core: { failureReason: 'GPU device lost (destroyed): gone' } });
    const response = await createOpenAiHandler(engine)(new Request('http://localhost/health'));
    expect(response.status).toBe(503);
    expect(await response.json()).toMatchObject({ status: 'error', error: { type: 'engine_unavailable', message: 'The engine cannot serve: GPU device lost (destroyed): gone' } });
  });
});

describe('createOpenAiHandler: routes and CORS', () => {
  it('GET /v1/models and /v1/models/{id} (404 for another id); a trailing slash is the same route', async () => {
    const handler = handlerFor(vi.fn());
    expect(await (await handler(new Request('http://localhost/v1/models/'))).json()).toMatchObject({ object: 'list', data: [{ id: 'fake-model' }] });
    expect(await (await handler(new Request('http://localhost/v1/models/fake-model'))).json()).toMatchObject({ id: 'fake-model' });
    expect((await handler(new Request('http://localhost/v1/models/other'))).status).toBe(404);
  });

  it('a preflight gets 204 with the asked-for headers allowed; every response allows any origin', async () => {
    const handler = handlerFor(vi.fn());
    const preflight = await handler(new Request('http://localhost/v1/chat/completions', {
      method: 'OPTIONS',
      headers: { 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' },
    }));
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-headers')).toBe('authorization, content-type');
    expect(preflight.headers.get('access-control-allow-methods')).toContain('POST');
    expect(preflight.headers.get('access-control-allow-origin')).toBe('*');
    expect((await handler(new Request('http://localhost/nowhere'))).headers.get('access-control-allow-origin')).toBe('*');
  });

  it('cors: false: no CORS headers, OPTIONS is a wrong method', async () => {
    const handler = handlerFor(vi.fn(), { cors: false });
    const response = await handler(new Request('http://localhost/v1/chat/completions', { method: 'OPTIONS' }));
    expect(response.status).toBe(405);
    expect(response.headers.get('access-control-allow-origin')).toBeNull();
  });
});

describe('createOpenAiHandler: workflows and /metrics', () => {
  it('DELETE /v1/workflows/{id} ends the workflow (200), or 404 naming workflow_id when none is open', async () => {
    const ended: string[] = [];
    const engine = { ...fakeEngine(async () => ({})), workflows: { end: async (id: string) => (ended.push(id), id === 'job 1') } } as unknown as Engine;
    const handler = createOpenAiHandler(engine);
    const ok = await handler(new Request('http://localhost/v1/workflows/job%201', { method: 'DELETE' }));
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ id: 'job 1', object: 'workflow.deleted', deleted: true });
    const missing = await handler(new Request('http://localhost/v1/workflows/nope', { method: 'DELETE' }));
    expect(missing.status).toBe(404);
    expect((await missing.json()).error).toMatchObject({ param: 'workflow_id', code: 'workflow_not_found' });
    expect(ended).toEqual(['job 1', 'nope']);
    expect((await handler(new Request('http://localhost/v1/workflows/x', { method: 'GET' }))).status).toBe(405);
  });

  it('GET /metrics without a loaded model is a 503', async () => {
    const response = await handlerFor(async () => ({}))(new Request('http://localhost/metrics'));
    expect(response.status).toBe(503);
  });
});
