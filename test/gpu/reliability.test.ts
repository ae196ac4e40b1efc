// Abuse and failure, with a good request alongside: oversized and malformed requests are refused
// with 4xx errors while it completes unchanged; a full queue answers 429; a failed step ends only
// its own sequences and the engine goes on; a lost GPU device makes it refuse clearly (503).
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError } from '../../src/engine/errors.js';
import { createOpenAiHandler } from '../../src/engine/http.js';
import { createEngine, type Engine } from '../../src/index.js';
import type { ChatCompletion } from '../../src/engine/index.js';
import { serve } from '../../src/cli/serve.js';
import { SHIPPED_MODEL, shippedEngine } from '../helpers/engine.js';
import { rng } from '../helpers/random.js';

const PROMPT = 'Prince Andrew looked at';

async function apiError(p: Promise<unknown>): Promise<ApiError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(ApiError);
    return e as ApiError;
  }
  throw new Error('expected the request to fail');
}

/**
 * An engine on its own device whose model file is gone once it is loaded: a device loss cannot be
 * recovered from (test/gpu/recovery.test.ts covers recovery), so the engine stops serving.
 */
async function unrecoverableEngine(): Promise<Engine> {
  const dir = mkdtempSync(join(tmpdir(), 'wgserve-reliability-'));
  const path = join(dir, 'wg-tolstoy-q8_0.gguf');
  copyFileSync(SHIPPED_MODEL, path);
  try {
    return await createEngine({ model: path });
  } finally {
    rmSync(dir, { recursive: true });
  }
}

function greedyChat(engine: Engine, maxTokens: number): Promise<ChatCompletion> {
  return engine.chat.completions.create({ messages: [{ role: 'user', content: PROMPT }], max_tokens: maxTokens, temperature: 0 });
}

describe('abusive requests beside a good one', () => {
  let engine: Engine;
  let expected: string;
  beforeAll(async () => {
    engine = await shippedEngine({ maxQueuedSequences: 40 });
    expected = (await greedyChat(engine, 24)).choices[0].message.content!;
  });
  afterAll(() => engine.unload());

  it('each is refused with a 4xx naming the problem; the good request completes unchanged', async () => {
    const good = greedyChat(engine, 24);
    // A deeply nested value (JSON.parse handles any depth; quoting it in an error must not recurse).
    const nested = JSON.parse('['.repeat(100_000) + ']'.repeat(100_000)) as unknown;
    const cases: [string, () => Promise<unknown>, number, string | null, RegExp][] = [
      ['10 MB prompt', () => engine.completions.create({ prompt: 'War and peace. '.repeat(700_000) }), 400, 'context_length_exceeded', /maximum context length is 256 tokens\. However, the prompt of 10500000 characters has at least \d+ tokens/],
      ['10 MB chat message', () => engine.chat.completions.create({ messages: [{ role: 'user', content: 'x'.repeat(10_000_000) }] }), 400, 'context_length_exceeded', /maximum context length/],
      ['thousands of prompts', () => engine.completions.create({ prompt: Array.from({ length: 5000 }, () => 'a') }), 400, 'too_many_prompts', /prompt has 5000 prompts; at most 64/],
      ['prompts × n', () => engine.completions.create({ prompt: Array.from({ length: 10 }, () => 'a'), n: 16 }), 400, 'too_many_choices', /10 prompts with n = 16 ask for 160 choices; at most 64/],
      ['nested temperature', () => engine.chat.completions.create({ messages: [{ role: 'user', content: 'x' }], temperature: nested as number }), 400, null, /temperature must be a number from 0 to 2, got an array of 1$/],
      ['nested role', () => engine.chat.completions.create({ messages: [{ role: nested as never, content: 'x' }] }), 400, null, /role must be one of .*, got an array of 1$/],
      ['huge string where a number goes', () => engine.completions.create({ prompt: 'x', max_tokens: 'y'.repeat(1_000_000) as never }), 400, null, /max_tokens must be an integer at least 1, got "y{40}\.\.\."$/],
    ];
    for (const [what, request, status, code, message] of cases) {
      const e = await apiError(request());
      expect(e.status, what).toBe(status);
      if (code) expect(e.code, what).toBe(code);
      expect(e.message, what).toMatch(message);
      expect(e.message.length, what).toBeLessThan(400);
    }
    expect((await good).choices[0].message.content).toBe(expected);
    expect(engine.core!.kv.pool.usedPages).toBe(0);
  });

  it('a full queue answers 429 with Retry-After; the queued requests complete normally', async () => {
    await engine.core!.idle();
    const running = Array.from({ length: 4 }, () => engine.completions.create({ prompt: PROMPT, n: 10, max_tokens: 8, temperature: 0 }));
    const full = await apiError(engine.completions.create({ prompt: PROMPT, max_tokens: 8 }));
    expect(full.status).toBe(429);
    expect(full.toJSON().error).toMatchObject({ type: 'rate_limit_error', code: 'queue_full' });
    expect(full.retryAfter).toBeGreaterThan(0);
    const handler = createOpenAiHandler(engine);
    const viaHttp = await handler(new Request('http://localhost/v1/completions', { method: 'POST', body: JSON.stringify({ prompt: PROMPT }) }));
    expect(viaHttp.status).toBe(429);
    expect(viaHttp.headers.get('retry-after')).toBe('1');
    for (const r of await Promise.all(running)) {
      expect(r.choices).toHaveLength(10);
      expect(r.choices.every((c) => c.finish_reason === 'length' && c.text === r.choices[0].text)).toBe(true);
    }
    expect(engine.core!.activeCount).toBe(0);
    expect((await engine.completions.create({ prompt: PROMPT, max_tokens: 2 })).choices).toHaveLength(1);
  });
});

describe('load with random client aborts', () => {
  it('served requests are right, aborted ones end with abort; pages all free and GPU memory flat after every round', async () => {
    const engine = await shippedEngine();
    try {
      const expected = (await greedyChat(engine, 12)).choices[0].message.content!;
      const rt = engine.model!.rt;
      const r = rng(2024);
      const memory: number[] = [];
      const tally = { served: 0, aborted: 0 };
      for (let round = 0; round < 3; round++) {
        const runs = Array.from({ length: 12 }, async () => {
          const controller = new AbortController();
          const abortAfter = r() < 0.4 ? Math.floor(r() * 6) : Infinity;
          if (abortAfter === 0) setTimeout(() => controller.abort(), Math.floor(r() * 20));
          const stream = await engine.chat.completions.create(
            { messages: [{ role: 'user', content: PROMPT }], max_tokens: 12, temperature: 0, stream: true },
            { signal: controller.signal },
          ).catch((e: Error) => e);
          if (stream instanceof Error) return { text: '', reason: 'abort' };
          let text = '';
          let reason = '';
          let chunks = 0;
          for await (const chunk of stream) {
            text += chunk.choices[0]?.delta.content ?? '';
            reason = chunk.choices[0]?.finish_reason ?? reason;
            if (++chunks === abortAfter) controller.abort();
          }
          return { text, reason };
        });
        for (const { text, reason } of await Promise.all(runs)) {
          if (reason === 'abort') expect(expected.startsWith(text)).toBe(true);
          else expect({ text, reason }).toEqual({ text: expected, reason: 'length' });
          tally[reason === 'abort' ? 'aborted' : 'served']++;
        }
        await engine.core!.idle();
        expect(engine.core!.activeCount).toBe(0);
        expect(engine.core!.kv.pool.usedPages).toBe(0);
        memory.push(rt.buffers.bytesAllocated);
      }
      expect(new Set(memory).size, `GPU bytes after each round: ${memory}`).toBe(1);
      expect(tally.served).toBeGreaterThan(5);
      expect(tally.aborted).toBeGreaterThan(5);
    } finally {
      await engine.unload();
    }
  });
});

describe('load with random client aborts and device losses in the middle', () => {
  it('every request completes right or ends cleanly; pages all free, lost devices hold nothing, memory flat after', async () => {
    // Its own device, which the test destroys (GPUDevice.destroy() makes it lost) at a random point of the load.
    const engine = await createEngine({ model: SHIPPED_MODEL });
    try {
      const expected = (await greedyChat(engine, 12)).choices[0].message.content!;
      const r = rng(77);
      const lostRuntimes = new Set<NonNullable<Engine['model']>['rt']>();
      const memory: number[] = [];
      const tally = { served: 0, aborted: 0 };
      for (let round = 0; round < 4; round++) {
        // Rounds 0 and 1 lose the device after a random number of streamed chunks; 2 and 3 do not.
        const loseAt = round < 2 ? 1 + Math.floor(r() * 40) : Infinity;
        let chunksSeen = 0;
        const onChunk = () => {
          if (++chunksSeen !== loseAt) return;
          lostRuntimes.add(engine.model!.rt);
          engine.model!.rt.gpu.device.destroy();
        };
        const runs = Array.from({ length: 12 }, async () => {
          const controller = new AbortController();
          const abortAfter = r() < 0.4 ? Math.floor(r() * 6) : Infinity;
          if (abortAfter === 0) setTimeout(() => controller.abort(), Math.floor(r() * 20));
          const stream = await engine.chat.completions.create(
            { messages: [{ role: 'user', content: PROMPT }], max_tokens: 12, temperature: 0, stream: true },
            { signal: controller.signal },
          ).catch((e: Error) => e);
          if (stream instanceof Error) return { text: '', reason: 'abort' };
          let text = '';
          let reason = '';
          let chunks = 0;
          for await (const chunk of stream) {
            text += chunk.choices[0]?.delta.content ?? '';
            reason = chunk.choices[0]?.finish_reason ?? reason;
            onChunk();
            if (++chunks === abortAfter) controller.abort();
          }
          return { text, reason };
        });
        for (const { text, reason } of await Promise.all(runs)) {
          if (reason === 'abort') expect(expected.startsWith(text)).toBe(true);
          else expect({ text, reason }).toEqual({ text: expected, reason: 'length' });
          tally[reason === 'abort' ? 'aborted' : 'served']++;
        }
        await engine.core!.idle();
        expect(engine.core!.failureReason).toBeNull();
        expect(engine.core!.activeCount).toBe(0);
        expect(engine.core!.kv.pool.usedPages).toBe(0);
        engine.core!.scheduler.checkInvariants();
        memory.push(engine.model!.rt.buffers.bytesAllocated);
      }
      expect(engine.core!.recoveries).toBe(lostRuntimes.size);
      expect(lostRuntimes.size).toBe(2);
      for (const rt of lostRuntimes) expect(rt.buffers.bytesAllocated).toBe(0);
      // A new device's activation buffers grow lazily with the largest batch it has run, so the
      // rounds differ by a few kB; a leaked KV cache or weight copy would add megabytes.
      const spread = Math.max(...memory) - Math.min(...memory);
      expect(spread, `GPU bytes after each round: ${memory}`).toBeLessThan(Math.min(engine.core!.kv.bytes, memory[0]) / 20);
      expect(tally.served).toBeGreaterThan(5);
      expect(tally.aborted).toBeGreaterThan(5);
    } finally {
      await engine.unload();
    }
  });
});

describe('a step that fails', () => {
  let engine: Engine;
  beforeAll(async () => {
    engine = await shippedEngine();
  });
  afterAll(() => engine.unload());

  it('ends only the sequences in it, with a server error; the engine checks itself and serves on', async () => {
    const expected = (await greedyChat(engine, 12)).choices[0].message.content!;
    const forward = engine.core!.forward;
    const real = forward.sampleWithLogprobs.bind(forward);
    let failNext = true;
    // The failure comes after the GPU has written the step's K/V: those pages must not be cached.
    forward.sampleWithLogprobs = async (...args) => {
      const result = await real(...args);
      if (failNext) {
        failNext = false;
        throw new Error('GPU validation error: injected for the test');
      }
      return result;
    };
    const longPrompt = 'Prince Andrew looked at the sky above Austerlitz, and Pierre looked at Natasha, who said nothing at all.';
    const longChat = () => engine.chat.completions.create({ messages: [{ role: 'user', content: longPrompt }], max_tokens: 2, temperature: 0 });
    const cachedBefore = engine.core!.kv.pool.cachedPages;
    try {
      const failed = await apiError(longChat());
      expect(failed.status).toBe(500);
      expect(engine.core!.kv.pool.cachedPages).toBe(cachedBefore);
      const retried = await longChat();
      expect(retried.usage.prompt_tokens).toBeGreaterThan(32);
      expect(retried.usage.prompt_tokens_details!.cached_tokens).toBe(0);
      failNext = true;
      const e = await apiError(greedyChat(engine, 12));
      expect(e.status).toBe(500);
      expect(e.toJSON().error).toMatchObject({ type: 'server_error', param: null, code: 'generation_failed' });
      expect(e.message).toMatch(/Generation failed on the server: GPU validation error: injected for the test/);
      expect(engine.core!.failureReason).toBeNull();
      expect(engine.core!.kv.pool.usedPages).toBe(0);
      expect((await greedyChat(engine, 12)).choices[0].message.content).toBe(expected);
      const health = await createOpenAiHandler(engine)(new Request('http://localhost/health'));
      expect(health.status).toBe(200);
    } finally {
      forward.sampleWithLogprobs = real;
    }
  });
});

describe('a lost GPU device that cannot be recovered from', () => {
  it('fails the requests in flight and every later one with a 503, and /health says why', async () => {
    // Its own device (the engine opens one): the test destroys it.
    const engine = await unrecoverableEngine();
    try {
      const inFlight = engine.chat.completions.create({ messages: [{ role: 'user', content: PROMPT }], max_tokens: 200, ignore_eos: true, stream: true } as never);
      const stream = (await inFlight) as unknown as AsyncIterable<unknown>;
      const failedStream = (async () => {
        for await (const _ of stream);
      })();
      engine.model!.rt.gpu.device.destroy();
      const e = await apiError(failedStream);
      expect([500, 503]).toContain(e.status);
      expect(e.param).toBeNull();
      await engine.core!.failed;
      expect(engine.core!.failureReason).toMatch(/GPU device lost .*recovery failed: .*cannot open the model file/);
      const later = await apiError(greedyChat(engine, 4));
      expect(later.status).toBe(503);
      expect(later.toJSON().error).toMatchObject({ type: 'engine_unavailable', code: 'engine_failed', param: null });
      const health = await createOpenAiHandler(engine)(new Request('http://localhost/health'));
      expect(health.status).toBe(503);
      expect(await health.json()).toMatchObject({ status: 'error', error: { message: expect.stringMatching(/GPU device lost/) } });
      // reload() opens a new device in place of the lost one.
      await engine.reload(SHIPPED_MODEL);
      expect((await greedyChat(engine, 4)).usage.completion_tokens).toBe(4);
    } finally {
      await engine.unload();
    }
  });
});

describe('wgserve serve', () => {
  it('ends with exit code 1 when the engine loses its GPU for good, /health saying why until then', async () => {
    const engine = await unrecoverableEngine();
    try {
      let url = '';
      let exited: Promise<number> = Promise.resolve(-1);
      await new Promise<void>((resolve) => {
        exited = serve(engine, 0, '127.0.0.1', new Promise(() => {}), (u) => {
          url = u;
          resolve();
        });
      });
      expect((await fetch(`${url}/health`)).status).toBe(200);
      const healthWhenFailed = engine.core!.failed.then(() => createOpenAiHandler(engine)(new Request('http://localhost/health')));
      engine.model!.rt.gpu.device.destroy();
      expect((await healthWhenFailed).status).toBe(503);
      expect(await exited).toBe(1);
    } finally {
      await engine.unload();
    }
  });
});
