// Where model bytes come from: a path (Node), a File/Blob, an ArrayBuffer, or a URL (streamed).
// Every source is read front to back through one small interface, so a model streams from the
// network straight into GPU buffers without the whole file ever sitting in memory.

/** A path (Node), URL, Blob/File, bytes, or a fetch Response whose body is the GGUF file. */
export type ModelSource = string | URL | Blob | ArrayBuffer | Uint8Array | Response;

export interface ByteReader {
  /** A name for errors: the path, URL or file name. */
  readonly name: string;
  /** Total size when known (Content-Length, file size). */
  readonly size: number | undefined;
  /** Bytes consumed so far. */
  readonly position: number;
  /** Reads exactly n bytes at the current position; fails clearly if the source ends first. */
  read(n: number): Promise<Uint8Array>;
  /** Reads up to n bytes at the current position: fewer only where the source ends. */
  readUpTo(n: number): Promise<Uint8Array>;
  /** Advances to `offset` (never backwards). */
  seek(offset: number): Promise<void>;
  /** Puts back the last bytes read (a header parser that read ahead), so they are read again. */
  unread(bytes: Uint8Array): void;
  close(): Promise<void>;
}

export interface OpenSourceOptions {
  signal?: AbortSignal;
  /** A download that sends no byte for this long fails (default 30 000 ms). */
  idleTimeoutMs?: number;
}

export const DEFAULT_IDLE_TIMEOUT_MS = 30_000;

export class ModelSourceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelSourceError';
  }
}

function truncated(name: string, at: number, want: number, size: number | undefined): ModelSourceError {
  return new ModelSourceError(`${name}: file is truncated: needed bytes ${at}..${at + want} but it ends at ${size ?? 'an earlier byte'}`);
}

/** A source that can read any byte range: positions are just numbers. */
abstract class RandomAccessReader implements ByteReader {
  position = 0;
  constructor(readonly name: string, readonly size: number) {}

  protected abstract readAt(offset: number, n: number): Promise<Uint8Array>;

  async read(n: number): Promise<Uint8Array> {
    if (this.position + n > this.size) throw truncated(this.name, this.position, n, this.size);
    const out = await this.readAt(this.position, n);
    this.position += n;
    return out;
  }
  readUpTo(n: number): Promise<Uint8Array> {
    return this.read(Math.max(0, Math.min(n, this.size - this.position)));
  }
  async seek(offset: number): Promise<void> {
    this.position = offset;
  }
  unread(bytes: Uint8Array): void {
    this.position -= bytes.byteLength;
  }
  async close(): Promise<void> {}
}

class MemoryReader extends RandomAccessReader {
  constructor(name: string, private readonly bytes: Uint8Array) {
    super(name, bytes.byteLength);
  }
  protected async readAt(offset: number, n: number): Promise<Uint8Array> {
    return this.bytes.subarray(offset, offset + n);
  }
}

class BlobReader extends RandomAccessReader {
  constructor(name: string, private readonly blob: Blob) {
    super(name, blob.size);
  }
  protected async readAt(offset: number, n: number): Promise<Uint8Array> {
    return new Uint8Array(await this.blob.slice(offset, offset + n).arrayBuffer());
  }
}

/** Sequential reader over a stream of chunks (fetch body, Node file stream). */
class StreamReader implements ByteReader {
  position = 0;
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  private done = false;

  constructor(
    readonly name: string,
    readonly size: number | undefined,
    private readonly reader: ReadableStreamDefaultReader<Uint8Array>,
    private readonly options: OpenSourceOptions = {},
  ) {}

  async read(n: number): Promise<Uint8Array> {
    if (n === 0) return new Uint8Array(0);
    await this.fill(n);
    if (this.buffered < n) throw this.endedEarly(n);
    const out = this.take(n);
    this.position += n;
    return out;
  }

  async readUpTo(n: number): Promise<Uint8Array> {
    await this.fill(n);
    return this.read(Math.min(n, this.buffered));
  }

  async seek(offset: number): Promise<void> {
    if (offset < this.position) throw new Error(`${this.name}: cannot seek backwards in a stream`);
    while (this.position < offset) {
      const step = Math.min(offset - this.position, 1 << 20);
      await this.read(step);
    }
  }

  unread(bytes: Uint8Array): void {
    if (!bytes.byteLength) return;
    this.chunks.unshift(bytes);
    this.buffered += bytes.byteLength;
    this.position -= bytes.byteLength;
  }

  async close(): Promise<void> {
    if (!this.done) await this.reader.cancel().catch(() => {});
  }

  private async fill(n: number): Promise<void> {
    while (this.buffered < n && !this.done) {
      const { value, done } = await this.next();
      if (done) this.done = true;
      else if (value.byteLength) {
        this.chunks.push(value);
        this.buffered += value.byteLength;
      }
    }
  }

  /** The next chunk; a stall longer than the idle timeout or a broken connection is a ModelSourceError saying where. */
  private async next(): Promise<ReadableStreamReadResult<Uint8Array>> {
    const timeoutMs = this.options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stalled = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new ModelSourceError(
        `${this.name}: the download stalled: no data for ${timeoutMs / 1000} s at byte ${this.received}${this.ofSize} (idle timeout)`)), timeoutMs);
    });
    try {
      return await Promise.race([this.reader.read(), stalled]);
    } catch (e) {
      this.done = true;
      void this.reader.cancel().catch(() => {});
      if (this.options.signal?.aborted) throw this.options.signal.reason;
      if (e instanceof ModelSourceError) throw e;
      const cause = (e as Error & { cause?: Error }).cause?.message;
      throw new ModelSourceError(`${this.name}: the connection was cut at byte ${this.received}${this.ofSize} (${(e as Error).message}${cause ? `: ${cause}` : ''})`);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Bytes that came in so far. */
  private get received(): number {
    return this.position + this.buffered;
  }

  private get ofSize(): string {
    return this.size === undefined ? '' : ` of ${this.size}`;
  }

  private endedEarly(n: number): ModelSourceError {
    if (this.size !== undefined && this.received < this.size) {
      return new ModelSourceError(`${this.name}: the download ended at byte ${this.received} of ${this.size} (the connection closed early)`);
    }
    return truncated(this.name, this.position, n, this.received);
  }

  private take(n: number): Uint8Array {
    const first = this.chunks[0];
    if (first.byteLength >= n) {
      this.chunks[0] = first.subarray(n);
      if (!this.chunks[0].byteLength) this.chunks.shift();
      this.buffered -= n;
      return first.subarray(0, n);
    }
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0];
      const k = Math.min(c.byteLength, n - filled);
      out.set(c.subarray(0, k), filled);
      filled += k;
      if (k === c.byteLength) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.buffered -= n;
    return out;
  }
}

function isUrl(s: string): boolean {
  return /^(https?|blob|data):/i.test(s);
}

async function openUrl(url: string, options: OpenSourceOptions): Promise<ByteReader> {
  return responseReader(url, await fetchModel(url, options), options);
}

/**
 * GET a model file; a network failure, no answer within the idle timeout, or an HTTP error status
 * is a ModelSourceError naming the URL.
 */
export async function fetchModel(url: string, options: OpenSourceOptions = {}): Promise<Response> {
  const timeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  const controller = new AbortController();
  const follow = () => controller.abort(options.signal?.reason);
  if (options.signal?.aborted) follow();
  options.signal?.addEventListener('abort', follow, { once: true });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, timeoutMs);
  let response: Response;
  try {
    response = await fetch(url, { signal: controller.signal });
  } catch (e) {
    if (options.signal?.aborted) throw options.signal.reason;
    if (timedOut) throw new ModelSourceError(`${url}: the server sent no answer for ${timeoutMs / 1000} s (idle timeout)`);
    const cause = (e as Error & { cause?: Error }).cause?.message;
    throw new ModelSourceError(`${url}: could not fetch the model (${(e as Error).message}${cause ? `: ${cause}` : ''})`);
  } finally {
    clearTimeout(timer);
  }
  // The body streams on: aborts from the caller still reach it; the idle timeout is the reader's.
  if (!response.ok) {
    void response.body?.cancel().catch(() => {});
    throw new ModelSourceError(`${url}: HTTP ${response.status} ${response.statusText}`.trim());
  }
  return response;
}

function responseReader(url: string, response: Response, options: OpenSourceOptions = {}): ByteReader {
  if (!response.ok) throw new ModelSourceError(`${url}: HTTP ${response.status} ${response.statusText}`.trim());
  if (!response.body) throw new ModelSourceError(`${url}: response has no body`);
  const length = response.headers.get('content-length');
  const encoded = response.headers.get('content-encoding');
  const size = length && !encoded ? Number(length) : undefined;
  return new StreamReader(url, size, response.body.getReader(), options);
}

/** Node file, read with positioned reads (no stream buffering, no whole-file copy). */
class FileReader extends RandomAccessReader {
  constructor(name: string, size: number, private readonly handle: import('node:fs/promises').FileHandle) {
    super(name, size);
  }
  protected async readAt(offset: number, n: number): Promise<Uint8Array> {
    const out = new Uint8Array(n);
    const { bytesRead } = await this.handle.read(out, 0, n, offset);
    if (bytesRead !== n) throw truncated(this.name, offset, n, offset + bytesRead);
    return out;
  }
  override async close(): Promise<void> {
    await this.handle.close();
  }
}

async function openPath(path: string): Promise<ByteReader> {
  const fsModule = 'node:fs/promises';
  const fs = (await import(/* @vite-ignore */ fsModule)) as typeof import('node:fs/promises');
  let handle: import('node:fs/promises').FileHandle;
  try {
    handle = await fs.open(path, 'r');
  } catch (e) {
    throw new ModelSourceError(`${path}: cannot open the model file (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return new FileReader(path, (await handle.stat()).size, handle);
}

export async function openModelSource(source: ModelSource, options: OpenSourceOptions = {}): Promise<ByteReader> {
  if (source instanceof Uint8Array) return new MemoryReader('buffer', source);
  if (source instanceof ArrayBuffer) return new MemoryReader('buffer', new Uint8Array(source));
  if (typeof Response !== 'undefined' && source instanceof Response) return responseReader(source.url || 'response', source, options);
  if (typeof Blob !== 'undefined' && source instanceof Blob) {
    return new BlobReader((source as File).name ?? 'blob', source);
  }
  const text = source instanceof URL ? source.href : String(source);
  if (isUrl(text)) return openUrl(text, options);
  if (text.startsWith('file:')) return openPath(new URL(text).pathname);
  if (typeof process !== 'undefined' && process.versions?.node) return openPath(text);
  return openUrl(new URL(text, globalThis.location?.href).href, options);
}

/**
 * Whether `source` can be read again after loading without a new download: a path (Node), a
 * Blob/File or bytes. A URL or a Response is read once (a stream).
 */
export function isRereadable(source: ModelSource): boolean {
  if (source instanceof Uint8Array || source instanceof ArrayBuffer) return true;
  if (typeof Response !== 'undefined' && source instanceof Response) return false;
  if (typeof Blob !== 'undefined' && source instanceof Blob) return true;
  const text = source instanceof URL ? source.href : String(source);
  if (isUrl(text)) return false;
  return text.startsWith('file:') || (typeof process !== 'undefined' && !!process.versions?.node);
}

/**
 * A reader that keeps a copy of every byte it passes on, in file order, so a source read once
 * (a download) can be read again from memory: `kept()` is those bytes as a Blob.
 */
export class KeepingReader implements ByteReader {
  private readonly chunks: Uint8Array[] = [];
  private keptBytes = 0;

  constructor(private readonly inner: ByteReader) {}

  get name(): string {
    return this.inner.name;
  }
  get size(): number | undefined {
    return this.inner.size;
  }
  get position(): number {
    return this.inner.position;
  }

  async read(n: number): Promise<Uint8Array> {
    const at = this.inner.position;
    return this.keep(at, await this.inner.read(n));
  }
  async readUpTo(n: number): Promise<Uint8Array> {
    const at = this.inner.position;
    return this.keep(at, await this.inner.readUpTo(n));
  }
  /** Reads up to `offset` through read(), so the skipped bytes are kept too. */
  async seek(offset: number): Promise<void> {
    while (this.inner.position < offset) await this.read(Math.min(offset - this.inner.position, 1 << 20));
  }
  unread(bytes: Uint8Array): void {
    this.inner.unread(bytes);
  }
  close(): Promise<void> {
    return this.inner.close();
  }

  /** Every byte read so far, from the start of the file (a File named like the source, where File exists). */
  kept(): Blob {
    const parts = this.chunks as BlobPart[];
    return typeof File !== 'undefined' ? new File(parts, this.name) : new Blob(parts);
  }

  private keep(at: number, bytes: Uint8Array): Uint8Array {
    const end = at + bytes.byteLength;
    if (end <= this.keptBytes) return bytes;
    if (at > this.keptBytes) throw new Error(`${this.name}: bytes ${this.keptBytes}..${at} were skipped and cannot be kept`);
    this.chunks.push(bytes.slice(this.keptBytes - at));
    this.keptBytes = end;
    return bytes;
  }
}
