// `wgserve serve`: the OpenAI HTTP API (src/engine/http.ts) on node:http, one line per request to
// stderr, until SIGINT or SIGTERM, which stop it cleanly (requests aborted, engine destroyed, exit 0),
// or until the engine cannot serve any more (its GPU is lost), which ends it with exit code 1.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Engine, EngineOptions } from '../engine/index.js';
import { createOpenAiHandler } from '../engine/http.js';
import { fetchListener, type ExchangeRecord } from './fetch-adapter.js';
import { parseNumber, parseNumerics, withEngine } from './session.js';
import { KV_FORMATS, type KvFormat } from '../model/index.js';

export interface ServeCliOptions {
  model?: string;
  port?: string;
  host?: string;
  'kv-memory'?: string;
  'kv-format'?: string;
  'max-batch-tokens'?: string;
  /** Every request computes its whole prompt (no KV shared between requests or choices). */
  'no-prefix-cache'?: boolean;
  /** Scheduling policy: fcfs (default) or workflow. */
  policy?: string;
  /** workflow policy: seconds a call may wait before it runs next, or "adaptive" (default). */
  'starvation-after'?: string;
  /** workflow policy: seconds a finished call's pages stay kept for its agent, or "adaptive" (default); 0: none. */
  'workflow-ttl'?: string;
  /** Kernel set: fast (default) or llama.cpp. */
  numerics?: string;
  /** A directory for the context store (KV pages kept across restarts). */
  'context-store'?: string;
  /** The context store's byte budget in MiB (default 256). */
  'context-store-mb'?: string;
  /** Most KV pages sessions keep pinned between requests (default: half the pool). */
  'max-session-pages'?: string;
  /** Most sessions open at once (default 256). */
  'max-sessions'?: string;
  /** Seconds without a request after which a session is unpinned (default 300; 0: never). */
  'session-unpin-after'?: string;
  /** Seconds without a request after which a session is destroyed (default 3600; 0: never). */
  'session-expire-after'?: string;
}

/** Sessions over HTTP whose clients went away without DELETE: destroyed after an hour without a request. */
export const SERVE_SESSION_EXPIRE_AFTER_S = 3600;

/** How long requests still running at shutdown get to end (they are aborted first) before their connections are cut. */
const SHUTDOWN_GRACE_MS = 3000;

export async function serveCommand(opts: ServeCliOptions): Promise<number> {
  const port = parseNumber(opts.port, 'port', 8080, { integer: true, min: 0, max: 65535 });
  const host = opts.host ?? '127.0.0.1';
  const engineOptions = engineOptionsOf(opts);
  // Caught from the start: a signal during loading must still destroy the engine, not kill the process.
  const stopSignal = stopSignals();
  try {
    return await withEngine(engineOptions, (engine) => serve(engine, port, host, stopSignal.received));
  } finally {
    stopSignal.dispose();
  }
}

/**
 * Serves `engine` on host:port until `stopSignal` (exit code 0) or until the engine cannot serve
 * any more (exit code 1). Prints the URL on stdout, one line per request on stderr.
 */
export async function serve(engine: Engine, port: number, host: string, stopSignal: Promise<NodeJS.Signals>, onListening?: (url: string) => void): Promise<number> {
  const handler = createOpenAiHandler(engine, { onError: (error) => console.error(`wgserve: error: ${error.message}`) });
  const server = createServer(fetchListener(handler, { onExchange: logExchange }));
  await listen(server, port, host);
  console.log(`wgserve: serving ${engine.modelId} on ${baseUrl(server)}/v1`);
  onListening?.(baseUrl(server));
  const failed = engine.core!.failed.then((error) => ({ error }));
  const ended = await Promise.race([stopSignal.then((signal) => ({ signal })), failed]);
  if ('error' in ended) {
    // /health answers 503 with the reason until the server has closed; then the exit code tells a supervisor to restart.
    console.error(`wgserve: the engine cannot serve any more: ${ended.error.message}; shutting down`);
    await stop(server, engine);
    return 1;
  }
  console.error(`wgserve: ${ended.signal}, shutting down`);
  await stop(server, engine);
  return 0;
}

/** The engine options the serve flags ask for (throws a message naming the flag on bad values). */
export function engineOptionsOf(opts: ServeCliOptions): EngineOptions {
  const options: EngineOptions = { model: opts.model };
  if (opts['kv-memory'] !== undefined) options.kvMemoryBytes = parseNumber(opts['kv-memory'], 'kv-memory', 0, { min: 1 }) * 2 ** 20;
  if (opts['kv-format'] !== undefined) options.kvFormat = parseKvFormat(opts['kv-format']);
  if (opts['max-batch-tokens'] !== undefined) options.maxBatchTokens = parseNumber(opts['max-batch-tokens'], 'max-batch-tokens', 0, { integer: true, min: 1 });
  if (opts['no-prefix-cache']) options.prefixCache = false;
  options.numerics = parseNumerics(opts.numerics);
  if (opts['context-store-mb'] !== undefined && opts['context-store'] === undefined) throw new Error('--context-store-mb needs --context-store DIR');
  if (opts['context-store'] !== undefined) {
    if (!opts['context-store']) throw new Error('--context-store needs a directory');
    const mb = opts['context-store-mb'] === undefined ? undefined : parseNumber(opts['context-store-mb'], 'context-store-mb', 0, { min: 0 });
    options.contextStore = { kind: 'directory', path: opts['context-store'], maxBytes: mb === undefined ? undefined : Math.floor(mb * 2 ** 20) };
  }
  if (opts.policy !== undefined) {
    if (opts.policy !== 'fcfs' && opts.policy !== 'workflow') throw new Error(`--policy must be fcfs or workflow, got ${JSON.stringify(opts.policy)}`);
    options.policy = opts.policy;
  }
  if (opts['starvation-after'] !== undefined) options.starvationMs = secondsOrAdaptive(opts['starvation-after'], 'starvation-after', 0.001);
  if (opts['workflow-ttl'] !== undefined) options.retentionTtlMs = secondsOrAdaptive(opts['workflow-ttl'], 'workflow-ttl', 0);
  return { ...options, ...sessionOptionsOf(opts) };
}

function sessionOptionsOf(opts: ServeCliOptions): Pick<EngineOptions, 'maxSessionPages' | 'maxSessions' | 'sessionUnpinAfterMs' | 'sessionExpireAfterMs'> {
  const options: Pick<EngineOptions, 'maxSessionPages' | 'maxSessions' | 'sessionUnpinAfterMs' | 'sessionExpireAfterMs'> = {};
  if (opts['max-session-pages'] !== undefined) options.maxSessionPages = parseNumber(opts['max-session-pages'], 'max-session-pages', 0, { integer: true, min: 0 });
  if (opts['max-sessions'] !== undefined) options.maxSessions = parseNumber(opts['max-sessions'], 'max-sessions', 0, { integer: true, min: 1 });
  if (opts['session-unpin-after'] !== undefined) options.sessionUnpinAfterMs = secondsOrNever(opts['session-unpin-after'], 'session-unpin-after');
  options.sessionExpireAfterMs = secondsOrNever(opts['session-expire-after'] ?? String(SERVE_SESSION_EXPIRE_AFTER_S), 'session-expire-after');
  return options;
}

/** A flag in seconds as milliseconds, or "adaptive". */
function secondsOrAdaptive(value: string, name: string, min: number): number | 'adaptive' {
  if (value === 'adaptive') return value;
  return parseNumber(value, name, 0, { min }) * 1000;
}

/** A flag in seconds as milliseconds, 0 meaning never (Infinity). */
function secondsOrNever(value: string, name: string): number {
  const seconds = parseNumber(value, name, 0, { min: 0 });
  return seconds === 0 ? Infinity : seconds * 1000;
}

function parseKvFormat(value: string): KvFormat {
  const format = KV_FORMATS.find((f) => f === value);
  if (!format) throw new Error(`--kv-format must be one of ${KV_FORMATS.join(', ')}, not "${value}"`);
  return format;
}

/** The first SIGINT or SIGTERM; a second one gets Node's default (the process ends at once). */
function stopSignals(): { received: Promise<NodeJS.Signals>; dispose(): void } {
  let onSignal: (signal: NodeJS.Signals) => void = () => {};
  const dispose = () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
  const received = new Promise<NodeJS.Signals>((resolve) => {
    onSignal = (signal) => {
      dispose();
      resolve(signal);
    };
  });
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return { received, dispose };
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function baseUrl(server: Server): string {
  const { address, port } = server.address() as AddressInfo;
  return `http://${address.includes(':') ? `[${address}]` : address}:${port}`;
}

/** Stops listening, ends running generations (streams finish with 'abort'), then waits for connections to close. */
async function stop(server: Server, engine: Engine): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  engine.interruptGenerate();
  // A keep-alive connection goes idle once its response ends; server.close() only closed the idle ones of the moment.
  const sweep = setInterval(() => server.closeIdleConnections(), 50);
  const cut = setTimeout(() => server.closeAllConnections(), SHUTDOWN_GRACE_MS);
  await closed;
  clearInterval(sweep);
  clearTimeout(cut);
}

function logExchange(r: ExchangeRecord): void {
  const closed = r.clientClosed ? ' (client closed)' : '';
  console.error(`wgserve: ${r.method} ${r.url} ${r.status} ${(r.durationMs / 1000).toFixed(2)}s${closed}`);
}
