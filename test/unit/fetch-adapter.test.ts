// node:http in front of a Fetch handler (src/cli/fetch-adapter.ts), with small handlers standing
// in for the OpenAI one: the request arrives whole (method, path, headers, body), a streamed body
// goes out chunk by chunk, a body over the limit gets 413, and a client that leaves aborts the
// Request's signal.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { fetchListener, type ExchangeRecord, type FetchHandler } from '../../src/cli/fetch-adapter.js';

let server: Server | undefined;
const exchanges: ExchangeRecord[] = [];

async function serve(handler: FetchHandler, maxBodyBytes?: number): Promise<string> {
  server = createServer(fetchListener(handler, { maxBodyBytes, onExchange: (r) => exchanges.push(r) }));
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  server = undefined;
  exchanges.length = 0;
});

describe('fetchListener', () => {
  it('hands the handler the method, path, query, headers and body; sends status, headers and body back', async () => {
    const origin = await serve(async (request) => {
      const url = new URL(request.url);
      const echo = { method: request.method, path: url.pathname + url.search, auth: request.headers.get('authorization'), body: await request.text() };
      return new Response(JSON.stringify(echo), { status: 201, headers: { 'x-echo': 'yes' } });
    });
    const response = await fetch(`${origin}/v1/things?x=1`, { method: 'POST', headers: { authorization: 'Bearer none' }, body: 'héllo' });
    expect(response.status).toBe(201);
    expect(response.headers.get('x-echo')).toBe('yes');
    expect(await response.json()).toEqual({ method: 'POST', path: '/v1/things?x=1', auth: 'Bearer none', body: 'héllo' });
    expect(exchanges).toMatchObject([{ method: 'POST', url: '/v1/things?x=1', status: 201, clientClosed: false }]);
  });

  it('streams the body: the first chunk arrives before the handler has written the second', async () => {
    let release = () => {};
    const second = new Promise<void>((resolve) => (release = resolve));
    const origin = await serve(async () => new Response(new ReadableStream<Uint8Array>({
      async start(controller) {
        controller.enqueue(new TextEncoder().encode('one\n'));
        await second;
        controller.enqueue(new TextEncoder().encode('two\n'));
        controller.close();
      },
    })));
    const reader = (await fetch(origin)).body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toBe('one\n');
    release();
    expect(new TextDecoder().decode((await reader.read()).value)).toBe('two\n');
    expect((await reader.read()).done).toBe(true);
  });

  it('a body over maxBodyBytes: 413 in OpenAI\'s error shape, the handler never called', async () => {
    let called = false;
    const origin = await serve(async () => ((called = true), new Response('')), 1024);
    const response = await fetch(origin, { method: 'POST', body: 'x'.repeat(64 * 1024) });
    expect(response.status).toBe(413);
    expect(await response.json()).toMatchObject({ error: { type: 'invalid_request_error', code: 'body_too_large' } });
    expect(called).toBe(false);
  });

  it("a client that leaves mid-response aborts the Request's signal and cancels the body", async () => {
    let requestSignal: AbortSignal | undefined;
    let cancelled = false;
    const origin = await serve(async (request) => {
      requestSignal = request.signal;
      return new Response(new ReadableStream<Uint8Array>({
        pull: async (controller) => {
          await new Promise((resolve) => setTimeout(resolve, 20));
          if (!cancelled) controller.enqueue(new Uint8Array(8));
        },
        cancel: () => void (cancelled = true),
      }));
    });
    const client = new AbortController();
    const response = await fetch(origin, { signal: client.signal });
    await response.body!.getReader().read();
    client.abort();
    await waitUntil(() => cancelled && exchanges.length === 1);
    expect(requestSignal?.aborted).toBe(true);
    expect(exchanges[0]).toMatchObject({ status: 200, clientClosed: true });
  });
});

async function waitUntil(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
