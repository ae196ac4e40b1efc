import { createServer, type Server } from 'node:http';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GgmlType, GgufError, NeedMoreBytes, parseGgufHeader } from '../../src/model/gguf.js';
import { readGgufHeader, streamTensors } from '../../src/model/loader.js';
import { modelFingerprint } from '../../src/model/fingerprint.js';
import { openModelSource } from '../../src/model/source.js';
import { readModelConfig } from '../../src/model/config.js';
import { f32Bytes, writeGguf } from '../helpers/gguf-writer.js';
import { modelPath } from '../helpers/shared.js';

const small = () => writeGguf(
  {
    'general.architecture': { type: 'string', value: 'llama' },
    'test.count': { type: 'u32', value: 7 },
    'test.list': { type: 'array', itemType: 'string', value: ['a', 'b'] },
  },
  [
    { name: 'a', dims: [4, 2], type: GgmlType.F32, data: f32Bytes(new Float32Array([1, 2, 3, 4, 5, 6, 7, 8])) },
    { name: 'b', dims: [3], type: GgmlType.F32, data: f32Bytes(new Float32Array([9, 10, 11])) },
  ],
);

describe('GGUF header', () => {
  it('parses metadata and tensor directory', () => {
    const h = parseGgufHeader(small());
    expect(h.version).toBe(3);
    expect(h.metadata.get('test.count')).toBe(7);
    expect(h.metadata.get('test.list')).toEqual(['a', 'b']);
    expect(h.tensors.map((t) => [t.name, t.dims, t.byteLength])).toEqual([['a', [4, 2], 32], ['b', [3], 12]]);
    expect(h.tensors[0].offset % 32).toBe(0);
  });

  it('asks for more bytes when the header is cut short', () => {
    const bytes = small();
    expect(() => parseGgufHeader(bytes.subarray(0, 40))).toThrow(NeedMoreBytes);
  });

  it('names what is wrong: not GGUF, truncated, unknown type', () => {
    expect(() => parseGgufHeader(new TextEncoder().encode('PK\u0003\u0004 this is a zip file....'), 'x.zip')).toThrow(/x\.zip: not a GGUF file/);
    const bytes = small();
    expect(() => parseGgufHeader(bytes, 'cut.gguf', bytes.byteLength - 24)).toThrow(/cut\.gguf: file is truncated: tensor b \(F32\)/);
    const bad = writeGguf({}, [{ name: 'w', dims: [32], type: GgmlType.F32, data: new Uint8Array(128) }]);
    // Patch the tensor's type field (last u32 before the u64 offset) to an unknown type.
    const view = new DataView(bad.buffer);
    const typeAt = bad.indexOf(0x77 /* 'w' */, 24) + 1 + 4 + 8;
    view.setUint32(typeAt, 99, true);
    expect(() => parseGgufHeader(bad, 'odd.gguf')).toThrow(/odd\.gguf: tensor w has unknown ggml type 99/);
  });

  it('reads every shared test model and its config', () => {
    const bytes = readFileSync(modelPath('wg-llama3-bpe-q8_0.gguf'));
    const h = parseGgufHeader(bytes, 'llama3', bytes.byteLength);
    const c = readModelConfig(h);
    expect(c).toMatchObject({ embeddingDim: 64, layerCount: 2, headCount: 2, kvHeadCount: 1, headDim: 32, ffnDim: 192, vocabSize: 128256, ropeFreqBase: 500000, tiedEmbeddings: true });
  });

  it('rejects an unsupported architecture by name', () => {
    const bytes = writeGguf({ 'general.architecture': { type: 'string', value: 'rwkv6' } }, []);
    expect(() => readModelConfig(parseGgufHeader(bytes), 'r.gguf')).toThrow(/r\.gguf: unsupported architecture "rwkv6"/);
  });

  it('fingerprints metadata and layout, not file bytes', async () => {
    const a = await modelFingerprint(parseGgufHeader(small()));
    const b = await modelFingerprint(parseGgufHeader(small()));
    expect(a).toMatch(/^[0-9a-f]{64}$/);
    expect(a).toBe(b);
    const other = writeGguf({ 'general.architecture': { type: 'string', value: 'llama' } }, []);
    expect(await modelFingerprint(parseGgufHeader(other))).not.toBe(a);
  });
});

describe('model sources', () => {
  let server: Server;
  let base = '';
  const file = small();
  beforeAll(async () => {
    server = createServer((req, res) => {
      if (req.url === '/model.gguf') {
        res.writeHead(200, { 'content-length': String(file.byteLength) });
        // Send in small pieces so the reader has to assemble chunks.
        for (let i = 0; i < file.byteLength; i += 7) res.write(file.subarray(i, i + 7));
        res.end();
      } else if (req.url === '/truncated.gguf') {
        res.writeHead(200);
        res.end(file.subarray(0, file.byteLength - 24)); // into tensor b (the last 20 bytes are padding)
      } else {
        res.writeHead(404);
        res.end();
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const addr = server.address();
    base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  });
  afterAll(() => server.close());

  const readAll = async (source: Parameters<typeof openModelSource>[0]) => {
    const reader = await openModelSource(source);
    const header = await readGgufHeader(reader);
    const got: Record<string, number[]> = {};
    const progress: number[] = [];
    await streamTensors(reader, header, (info, bytes) => {
      got[info.name] = Array.from(new Float32Array(bytes.slice().buffer));
    }, (p) => progress.push(p.loadedBytes));
    await reader.close();
    return { got, progress };
  };

  it('streams the same tensors from a buffer, a Blob, a path and a URL on 127.0.0.1, with progress', async () => {
    const expected = { a: [1, 2, 3, 4, 5, 6, 7, 8], b: [9, 10, 11] };
    expect((await readAll(file)).got).toEqual(expected);
    expect((await readAll(new Blob([file.slice()]))).got).toEqual(expected);
    expect((await readAll(modelPath('wg-tolstoy-q8_0.gguf'))).progress.length).toBeGreaterThan(10);
    const fromUrl = await readAll(`${base}/model.gguf`);
    expect(fromUrl.got).toEqual(expected);
    expect(fromUrl.progress.at(-1)).toBeGreaterThan(0);
  });

  it('fails clearly on a missing URL, a truncated download and a missing path', async () => {
    await expect(openModelSource(`${base}/nope.gguf`)).rejects.toThrow(/nope\.gguf: HTTP 404/);
    await expect(readAll(`${base}/truncated.gguf`)).rejects.toThrow(/truncated/);
    await expect(openModelSource('/no/such/model.gguf')).rejects.toThrow(/\/no\/such\/model\.gguf: cannot open the model file \(ENOENT\)/);
  });
});

describe('errors', () => {
  it('GgufError carries the source name', () => {
    expect(new GgufError('x', 'm.gguf').message).toBe('m.gguf: x');
  });
});
