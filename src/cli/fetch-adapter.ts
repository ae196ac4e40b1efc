// node:http in front of a Fetch API handler: each IncomingMessage becomes a Request whose signal
// aborts when the client goes away, and the handler's Response is streamed back with backpressure.
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import type { ReadableStream as NodeReadableStream } from 'node:stream/web';
import { pipeline } from 'node:stream/promises';
import { ApiError } from '../engine/errors.js';

export type FetchHandler = (request: Request) => Promise<Response>;

export interface ExchangeRecord {
  method: string;
  url: string;
  status: number;
  durationMs: number;
  /** The client closed the connection before the response was complete. */
  clientClosed: boolean;
}

export interface FetchAdapterOptions {
  /** Largest request body accepted, in bytes (default 16 MiB); a larger one is answered 413. */
  maxBodyBytes?: number;
  /** Called once per request, when its response has ended. */
  onExchange?: (record: ExchangeRecord) => void;
}

export function fetchListener(handler: FetchHandler, options: FetchAdapterOptions = {}): RequestListener {
  return (req, res) => void exchange(handler, req, res, options);
}

async function exchange(handler: FetchHandler, req: IncomingMessage, res: ServerResponse, options: FetchAdapterOptions): Promise<void> {
  const started = performance.now();
  const clientGone = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) clientGone.abort();
  });
  let status = 500;
  try {
    const request = await toRequest(req, clientGone.signal, options.maxBodyBytes ?? 16 * 2 ** 20);
    const response = await handler(request);
    status = response.status;
    await sendResponse(response, res);
  } catch (e) {
    // The handler answers its own errors: what is left is an oversized body or a client gone mid-exchange.
    if (!res.headersSent && !res.destroyed) {
      const error = ApiError.from(e);
      status = error.status;
      sendError(res, error);
    } else {
      res.destroy();
    }
  } finally {
    const durationMs = performance.now() - started;
    options.onExchange?.({ method: req.method ?? 'GET', url: req.url ?? '/', status, durationMs, clientClosed: clientGone.signal.aborted });
  }
}

async function toRequest(req: IncomingMessage, signal: AbortSignal, maxBodyBytes: number): Promise<Request> {
  const method = req.method ?? 'GET';
  const headers = new Headers();
  // rawHeaders alternates names and values, repeated headers kept.
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) headers.append(req.rawHeaders[i], req.rawHeaders[i + 1]);
  const hasBody = method !== 'GET' && method !== 'HEAD';
  const body = hasBody ? await readBody(req, maxBodyBytes) : undefined;
  // The handler routes on the path alone, so the origin need not be the Host header's.
  return new Request(new URL(req.url ?? '/', 'http://localhost'), { method, headers, body, signal });
}

/**
 * The whole body. Past maxBytes it rejects with a 413 at once but keeps reading (and dropping)
 * the rest: a socket destroyed mid-upload could not carry the 413 back.
 */
function readBody(req: IncomingMessage, maxBytes: number): Promise<Uint8Array<ArrayBuffer>> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.byteLength;
      if (size <= maxBytes) chunks.push(chunk);
      else reject(new ApiError(`The request body is larger than ${maxBytes} bytes`, 413, 'invalid_request_error', null, 'body_too_large'));
    });
    req.on('end', () => resolve(new Uint8Array(Buffer.concat(chunks))));
    req.on('error', reject);
    req.on('close', () => reject(new Error('the client closed the connection while sending the body')));
  });
}

async function sendResponse(response: Response, res: ServerResponse): Promise<void> {
  const headers: Record<string, string> = {};
  response.headers.forEach((value, name) => (headers[name] = value));
  res.writeHead(response.status, headers);
  if (!response.body) {
    res.end();
    return;
  }
  // Headers out now: a stream's first event may be a while coming.
  res.flushHeaders();
  // A client that leaves ends the pipeline, which cancels the body (and so the generation).
  await pipeline(Readable.fromWeb(response.body as NodeReadableStream<Uint8Array>), res);
}

function sendError(res: ServerResponse, error: ApiError): void {
  res.writeHead(error.status, { 'content-type': 'application/json', 'access-control-allow-origin': '*' });
  res.end(JSON.stringify(error.toJSON()));
}
