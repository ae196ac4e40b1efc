// Device-loss recovery: the GPU device is destroyed (GPUDevice.destroy() makes it lost) while
// requests stream; the engine gets a new device, uploads the weights again without a new
// download, and recomputes every unfinished sequence, so each request completes with exactly the
// output it has without a loss (the default kernels are batch invariant). When recovery itself
// fails, every request fails with a 503 that says why and /health answers 503; `wgserve serve`
// keeps serving through a recovered loss.
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ApiError } from '../../src/engine/errors.js';
import { createOpenAiHandler } from '../../src/engine/http.js';
import { createEngine, type Engine } from '../../src/index.js';
import { serve } from '../../src/cli/serve.js';
import { SHIPPED_MODEL } from '../helpers/engine.js';
import { serveStatic } from '../helpers/static-server.js';

interface Run {
  text: string;
  reason: string;
}

const REQUESTS = [
  { messages: [{ role: 'user' as const, content: 'Prince Andrew looked at' }], max_tokens: 40, temperature: 0 },
  { messages: [{ role: 'user' as const, content: 'Natasha said to her mother' }], max_tokens: 32, temperature: 0 },
  { messages: [{ role: 'user' as const, content: 'Pierre' }], max_tokens: 36, temperature: 0.9, seed: 11 },
];

/** Streams a request to its end; `onChunk` sees the running chunk count. */
async function stream(engine: Engine, body: (typeof REQUESTS)[number], onChunk: (n: number) => void = () => {}): Promise<Run> {
  const chunks = await engine.chat.completions.create({ ...body, stream: true, ignore_eos: true } as never) as unknown as AsyncIterable<{ choices: { delta: { content?: string }; finish_reason: string | null }[] }>;
  let text = '';
  let reason = '';
  let n = 0;
  for await (const chunk of chunks) {
    text += chunk.choices[0]?.delta.content ?? '';
    reason = chunk.choices[0]?.finish_reason ?? reason;
    onChunk(++n);
  }
  return { text, reason };
}

async function apiError(p: Promise<unknown>): Promise<ApiError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ApiError);
    return e as ApiError;
  }
  throw new Error('expected the request to fail');
}

/** Runs REQUESTS at once; the device is destroyed once the first has streamed `lossAfter` chunks. */
async function runWithLoss(engine: Engine, lossAfter: number): Promise<Run[]> {
  let lost = false;
  const loseDevice = (n: number) => {
    if (n < lossAfter || lost) return;
    lost = true;
    engine.model!.rt.gpu.device.destroy();
  };
  return Promise.all(REQUESTS.map((body, i) => stream(engine, body, i === 0 ? loseDevice : undefined)));
}

describe('a GPU device lost mid-generation', () => {
  const engines: Engine[] = [];
  afterAll(async () => {
    for (const e of engines) await e.unload();
  });

  it('is recovered from: every request in flight completes with the output it has without a loss', async () => {
    const engine = await createEngine({ model: SHIPPED_MODEL });
    engines.push(engine);
    const expected = await Promise.all(REQUESTS.map((body) => stream(engine, body)));
    const oldRuntime = engine.model!.rt;
    const runs = await runWithLoss(engine, 6);
    expect(runs).toEqual(expected);
    expect(runs.every((r) => r.reason === 'length')).toBe(true);
    const core = engine.core!;
    expect(core.recoveries).toBe(1);
    expect(core.failureReason).toBeNull();
    expect(engine.model!.rt).not.toBe(oldRuntime);
    expect(oldRuntime.gpu.lostError).not.toBeNull();
    await core.idle();
    expect(core.kv.pool.usedPages).toBe(0);
    core.scheduler.checkInvariants();
    const health = await createOpenAiHandler(engine)(new Request('http://localhost/health'));
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok', device_recoveries: 1 });
    // The prefix cache starts empty on the new device and fills again.
    const again = await stream(engine, REQUESTS[0]);
    expect(again).toEqual(expected[0]);
  });

  it('lost while idle or with n > 1 choices sharing a prompt: the next requests complete unchanged', async () => {
    const engine = await createEngine({ model: SHIPPED_MODEL });
    engines.push(engine);
    const body = { prompt: 'The old count', n: 3, max_tokens: 20, temperature: 0.7, seed: 5 };
    const expected = await engine.completions.create(body);
    engine.model!.rt.gpu.device.destroy();
    const first = await engine.completions.create(body);
    expect(first.choices.map((c) => c.text)).toEqual(expected.choices.map((c) => c.text));
    // Streamed, so the device goes after the first chunk, with all three choices in flight.
    const chunks = await engine.completions.create({ ...body, stream: true });
    const texts = ['', '', ''];
    let seen = 0;
    for await (const chunk of chunks) {
      for (const c of chunk.choices) texts[c.index] += c.text;
      if (++seen === 1) engine.model!.rt.gpu.device.destroy();
    }
    expect(texts).toEqual(expected.choices.map((c) => c.text));
    expect(engine.core!.recoveries).toBe(2);
  });

  it('wgserve serve keeps serving through it: a streamed HTTP request completes unchanged, /health stays 200', async () => {
    const engine = await createEngine({ model: SHIPPED_MODEL });
    engines.push(engine);
    let url = '';
    let exitCode: number | null = null;
    const stop = { fire: (_: NodeJS.Signals) => {} };
    let exited: Promise<number> = Promise.resolve(-1);
    await new Promise<void>((resolve) => {
      exited = serve(engine, 0, '127.0.0.1', new Promise((r) => (stop.fire = r)), (u) => {
        url = u;
        resolve();
      });
      void exited.then((code) => (exitCode = code));
    });
    const body = { prompt: 'Prince Andrew looked at', max_tokens: 24, temperature: 0 };
    const post = (stream: boolean) => fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...body, stream }) });
    const expected = ((await (await post(false)).json()) as { choices: { text: string }[] }).choices[0].text;
    const response = await post(true);
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    let sse = '';
    let events = 0;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      sse += value;
      if (++events === 2) engine.model!.rt.gpu.device.destroy();
    }
    const text = sse.split('\n').filter((l) => l.startsWith('data: {')).map((l) => (JSON.parse(l.slice(6)) as { choices: { text: string }[] }).choices[0]?.text ?? '').join('');
    expect(text).toBe(expected);
    expect(sse).toMatch(/data: \[DONE\]/);
    const health = await fetch(`${url}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok', device_recoveries: 1 });
    expect(exitCode).toBeNull();
    stop.fire('SIGTERM');
    expect(await exited).toBe(0);
  });

  it('from a URL, uploads the weights again from the bytes kept while loading (the server is gone by then)', async () => {
    const site = await serveStatic(dirname(SHIPPED_MODEL));
    const engine = await createEngine({ model: `${site.url}/wg-tolstoy-q8_0.gguf` });
    engines.push(engine);
    await site.close();
    const expected = await Promise.all(REQUESTS.map((body) => stream(engine, body)));
    expect(await runWithLoss(engine, 3)).toEqual(expected);
    expect(engine.core!.recoveries).toBe(1);
  });

  it('from a URL with keepModelBytes: false, fails every request with a 503 saying why; /health answers 503', async () => {
    const site = await serveStatic(dirname(SHIPPED_MODEL));
    const engine = await createEngine({ model: `${site.url}/wg-tolstoy-q8_0.gguf`, keepModelBytes: false });
    engines.push(engine);
    await site.close();
    const e = await apiError(runWithLoss(engine, 3));
    expect(e.status).toBe(503);
    expect(e.toJSON().error).toMatchObject({ type: 'engine_unavailable', code: 'engine_failed', param: null });
    expect(e.message).toMatch(/GPU device lost .*recovery failed: .*was read once \(a URL or a Response\) and not kept \(keepModelBytes: false\)/);
    await engine.core!.failed;
    const later = await apiError(engine.chat.completions.create(REQUESTS[0]));
    expect(later.status).toBe(503);
    const health = await createOpenAiHandler(engine)(new Request('http://localhost/health'));
    expect(health.status).toBe(503);
    expect(await health.json()).toMatchObject({ status: 'error', error: { message: expect.stringMatching(/recovery failed/) } });
  });

  it('when the model file is gone by then, fails clearly instead of serving another model', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wgserve-recovery-'));
    const path = join(dir, 'model.gguf');
    copyFileSync(SHIPPED_MODEL, path);
    const engine = await createEngine({ model: path });
    engines.push(engine);
    rmSync(dir, { recursive: true });
    const e = await apiError(runWithLoss(engine, 3));
    expect(e.status).toBe(503);
    expect(e.message).toMatch(/recovery failed: .*model\.gguf: cannot open the model file \(ENOENT\)/);
    expect(engine.core!.kv.pool.usedPages).toBe(0);
  });
});
