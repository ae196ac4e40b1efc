// Model downloads that go wrong, served on 127.0.0.1: a server that never answers, a download
// that stalls, a connection cut in the tensors or in the header, an HTML page instead of GGUF.
// Each must fail within the idle timeout with an error saying what was received.
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readGgufHeader, streamTensors } from '../../src/model/loader.js';
import { openModelSource } from '../../src/model/source.js';
import { modelPath } from '../helpers/shared.js';

const MODEL = new Uint8Array(readFileSync(modelPath('wg-tolstoy-q8_0.gguf')));
const IDLE_MS = 300;

/** Reads a whole model from `url` as Model.load does (without the GPU). */
async function download(url: string): Promise<number> {
  const reader = await openModelSource(url, { idleTimeoutMs: IDLE_MS });
  try {
    const header = await readGgufHeader(reader);
    let bytes = 0;
    await streamTensors(reader, header, (_, data) => void (bytes += data.byteLength));
    return bytes;
  } finally {
    await reader.close();
  }
}

describe('model downloads that go wrong', () => {
  let server: Server;
  let base = '';
  const sockets = new Set<Socket>();
  beforeAll(async () => {
    server = createServer((req, res) => {
      const length = { 'content-length': String(MODEL.byteLength), 'content-type': 'application/octet-stream' };
      switch (req.url) {
        case '/ok.gguf':
          return void res.writeHead(200, length).end(MODEL);
        case '/silent.gguf':
          return; // never answers
        case '/stalls.gguf':
          res.writeHead(200, length);
          return void res.write(MODEL.subarray(0, 300_000)); // then nothing, connection open
        case '/cut.gguf':
          res.writeHead(200, length);
          return void res.write(MODEL.subarray(0, 500_000), () => res.socket?.destroy());
        case '/cut-header.gguf':
          res.writeHead(200, length);
          return void res.write(MODEL.subarray(0, 10_000), () => res.socket?.destroy());
        case '/cut-header-unsized.gguf':
          res.writeHead(200, { 'content-type': 'application/octet-stream' });
          return void res.write(MODEL.subarray(0, 10_000), () => res.socket?.destroy());
        case '/login.gguf':
          return void res.writeHead(200, { 'content-type': 'text/html' }).end('<!DOCTYPE html>\n<html><body>Please sign in to download this model.</body></html>\n'.repeat(50));
        default:
          return void res.writeHead(404).end();
      }
    });
    server.on('connection', (s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  });

  it('a good download reads every tensor', async () => {
    expect(await download(`${base}/ok.gguf`)).toBeGreaterThan(1_000_000);
  });

  it('a server that sends no answer: the idle timeout, naming the URL', async () => {
    await expect(download(`${base}/silent.gguf`)).rejects.toThrow(`${base}/silent.gguf: the server sent no answer for 0.3 s (idle timeout)`);
  });

  it('a download that stalls: the idle timeout, saying at which byte', async () => {
    await expect(download(`${base}/stalls.gguf`)).rejects.toThrow(
      `${base}/stalls.gguf: the download stalled: no data for 0.3 s at byte 300000 of ${MODEL.byteLength} (idle timeout)`);
  });

  it('a connection cut in the tensors: at byte N of M', async () => {
    await expect(download(`${base}/cut.gguf`)).rejects.toThrow(
      new RegExp(`cut\\.gguf: (the connection was cut at byte 500000 of ${MODEL.byteLength} \\(.+\\)|the download ended at byte 500000 of ${MODEL.byteLength})`));
  });

  it('a connection cut in the header: at byte N of M, not "terminated" alone', async () => {
    const error = await download(`${base}/cut-header.gguf`).then(() => null, (e: Error) => e);
    expect(error?.message).toMatch(new RegExp(`cut-header\\.gguf: (the connection was cut at byte 10000 of ${MODEL.byteLength}|the download ended at byte 10000 of ${MODEL.byteLength})`));
  });

  it('a connection cut in the header of a download of unknown size: where the file ended', async () => {
    await expect(download(`${base}/cut-header-unsized.gguf`)).rejects.toThrow(/cut-header-unsized\.gguf: (the connection was cut at byte 10000 \(|file ends at byte 10000, inside its header)/);
  });

  it('an HTML page instead of the model: said so', async () => {
    await expect(download(`${base}/login.gguf`)).rejects.toThrow(`${base}/login.gguf: not a GGUF file (it starts with an HTML page, not model bytes)`);
  });
});
