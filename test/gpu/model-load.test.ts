// Loading a model onto the GPU from every kind of source, and failing without leaking GPU memory.
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Model, type LoadProgress } from '../../src/model/index.js';
import { getRuntime } from '../helpers/gpu.js';
import { modelPath } from '../helpers/shared.js';

const FILE = modelPath('wg-tolstoy-q8_0.gguf');
const bytes = readFileSync(FILE);

describe('Model.load', () => {
  let server: Server;
  let base = '';
  beforeAll(async () => {
    server = createServer((req, res) => {
      if (req.url === '/m.gguf') {
        res.writeHead(200, { 'content-length': String(bytes.byteLength) });
        res.end(bytes);
      } else if (req.url === '/cut.gguf') {
        // No Content-Length: the loader only learns of the cut when the stream ends mid-tensor.
        res.writeHead(200);
        res.end(bytes.subarray(0, bytes.byteLength - 5000));
      } else {
        res.writeHead(404);
        res.end();
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const a = server.address();
    base = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
  });
  afterAll(() => server.close());

  it('loads the same model from a path, a URL (with progress), a Blob and an ArrayBuffer', async () => {
    const rt = await getRuntime();
    const progress: LoadProgress[] = [];
    const fromUrl = await Model.load(rt, `${base}/m.gguf`, { onProgress: (p) => progress.push(p) });
    const fingerprints = [fromUrl.fingerprint];
    fromUrl.destroy();
    for (const source of [FILE, new Blob([bytes]), bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength)]) {
      const m = await Model.load(rt, source);
      fingerprints.push(m.fingerprint);
      expect(m.config).toMatchObject({ layerCount: 4, embeddingDim: 128, vocabSize: 2048, contextLength: 256 });
      m.destroy();
    }
    expect(new Set(fingerprints).size).toBe(1);
    expect(progress[0].phase).toBe('header');
    expect(progress.at(-1)).toMatchObject({ phase: 'done', loadedBytes: bytes.byteLength, totalBytes: bytes.byteLength });
    const weights = progress.filter((p) => p.phase === 'weights');
    expect(weights.length).toBeGreaterThan(30);
    expect(weights.every((p, i) => i === 0 || p.loadedBytes >= weights[i - 1].loadedBytes)).toBe(true);
  });

  it('fails on a truncated or corrupt file with a clear error, leaving no GPU memory behind', async () => {
    const rt = await getRuntime();
    const before = rt.buffers.bytesAllocated;
    const truncated = bytes.subarray(0, bytes.byteLength - 5000);
    await expect(Model.load(rt, new Blob([truncated]))).rejects.toThrow(/blob: file is truncated: tensor [\w.]+ \((Q8_0|F32)\) spans bytes \d+\.\.\d+ but the file has \d+/);
    const corrupt = new Uint8Array(bytes);
    corrupt.set([0, 0, 0, 0], 8); // tensor count 0 with metadata intact: required tensors are missing
    await expect(Model.load(rt, corrupt)).rejects.toThrow(/tensor token_embd\.weight is missing/);
    await expect(Model.load(rt, `${base}/cut.gguf`)).rejects.toThrow(/cut\.gguf: tensor [\w.]+ \((Q8_0|F32)\) at offset \d+: .*truncated/);
    await expect(Model.load(rt, `${base}/missing.gguf`)).rejects.toThrow(/missing\.gguf: HTTP 404/);
    expect(rt.buffers.bytesAllocated).toBe(before);
  });

  it('stops a load when its AbortSignal fires, freeing what was uploaded', async () => {
    const rt = await getRuntime();
    const before = rt.buffers.bytesAllocated;
    const controller = new AbortController();
    let seen = 0;
    const load = Model.load(rt, FILE, {
      signal: controller.signal,
      onProgress: (p) => { if (p.phase === 'weights' && ++seen === 5) controller.abort(new Error('user cancelled')); },
    });
    await expect(load).rejects.toThrow(/user cancelled/);
    expect(rt.buffers.bytesAllocated).toBe(before);
  });
});
