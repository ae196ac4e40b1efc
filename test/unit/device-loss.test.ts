// The CPU side of device-loss recovery, without a GPU: the scheduler drops the step in flight and
// preempts every running sequence, the prefix cache forgets its pages, and on a model whose KV
// store starts empty (a new device) every sequence ends with exactly what it generates alone.
// And the reader that keeps a download's bytes, so a lost device needs no new download.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { HashPrefixCache } from '../../src/kv/prefix-cache.js';
import { KvManager } from '../../src/kv/kv-manager.js';
import { PagePool } from '../../src/kv/page-pool.js';
import { readGgufHeader, streamTensors } from '../../src/model/loader.js';
import { KeepingReader, openModelSource } from '../../src/model/source.js';
import { Scheduler, Sequence } from '../../src/scheduler/index.js';
import { FakeModel, runAlone, VOCAB } from '../helpers/fake-model.js';
import { modelPath } from '../helpers/shared.js';

const PAGE = 4;
const CONTEXT = 128;
const prompt = (n: number, base: number) => Array.from({ length: n }, (_, i) => (base * 31 + i * 7) % VOCAB);

describe('a device loss in the scheduler and the KV pages', () => {
  it('preemptAll + dropCachedPages: every sequence recomputes on an empty KV store and generates what it does alone', () => {
    const pool = new PagePool(64);
    const kv = new KvManager(pool, PAGE, new HashPrefixCache(pool, PAGE, 'fingerprint'));
    const sched = new Scheduler({ kv, contextLength: CONTEXT, maxBatchTokens: 16 });
    // Two share a 9-token start (prefix cache), one is an n = 2 choice of another.
    const shared = prompt(9, 1);
    const prompts = [[...shared, 5, 6], [...shared, 7], prompt(13, 3)];
    const seqs = prompts.map((p, i) => new Sequence({ id: i, promptIds: p, maxTokens: 12 }));
    seqs.push(new Sequence({ id: 3, promptIds: prompts[2], maxTokens: 12, sharePromptWith: seqs[2] }));
    seqs.forEach((s) => sched.add(s));
    let model = new FakeModel(PAGE);
    const run = () => {
      const step = sched.schedule();
      if (step) sched.commit(step, model.run(step.batch, step.kvOps));
      sched.checkInvariants();
    };
    for (let i = 0; i < 6; i++) run();
    expect(seqs.every((s) => s.generated.length > 0 && !s.isFinished)).toBe(true);
    expect(pool.cachedPages + pool.usedPages).toBeGreaterThan(0);

    // The device is lost with a step in flight: its results never come.
    expect(sched.schedule()).not.toBeNull();
    const generatedAtLoss = seqs.map((s) => [...s.generated]);
    expect(sched.preemptAll()).toHaveLength(4);
    expect(pool.usedPages).toBe(0);
    kv.dropCachedPages();
    expect(pool.freePages).toBe(pool.totalPages);
    kv.checkInvariants([], true);
    expect(seqs.map((s) => s.generated)).toEqual(generatedAtLoss);
    expect(seqs.every((s) => s.status === 'preempted' && s.numComputed === 0)).toBe(true);

    // A new device: nothing of the old KV store is there (a stale cached page would fail FakeModel's reads).
    model = new FakeModel(PAGE);
    while (sched.hasWork) run();
    for (const s of seqs) {
      expect(s.finishReason).toBe('length');
      expect(s.generated).toEqual(runAlone([...s.promptIds], 12, CONTEXT).generated);
    }
    expect(pool.usedPages).toBe(0);
  });

  it('dropCachedPages refuses while a context still holds pages', () => {
    const pool = new PagePool(8);
    const kv = new KvManager(pool, PAGE, new HashPrefixCache(pool, PAGE, 'fingerprint'));
    pool.allocate(1);
    expect(() => kv.dropCachedPages()).toThrow(/1 pages are still held/);
  });
});

describe('KeepingReader', () => {
  it('keeps every byte a streamed load reads, so the kept copy loads to the same header and tensors', async () => {
    const file = new Uint8Array(readFileSync(modelPath('wg-tolstoy-q8_0.gguf')));
    // A download in uneven chunks.
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let at = 0; at < file.byteLength; at += 7777) controller.enqueue(file.slice(at, at + 7777));
        controller.close();
      },
    });
    const keeping = new KeepingReader(await openModelSource(new Response(body)));
    const header = await readGgufHeader(keeping);
    const tensors: Uint8Array[] = [];
    await streamTensors(keeping, header, (_, bytes) => void tensors.push(bytes.slice()));
    const kept = keeping.kept();
    const end = Math.max(...header.tensors.map((t) => t.offset + t.byteLength));
    expect(kept.size).toBe(end);
    // Buffer.equals: vitest's element-wise toEqual on a megabyte is slow.
    expect(Buffer.from(await kept.arrayBuffer()).equals(file.subarray(0, end))).toBe(true);

    const again = await openModelSource(kept);
    const header2 = await readGgufHeader(again);
    expect(header2.tensors.map((t) => [t.name, t.offset])).toEqual(header.tensors.map((t) => [t.name, t.offset]));
    const tensors2: Uint8Array[] = [];
    await streamTensors(again, header2, (_, bytes) => void tensors2.push(bytes.slice()));
    expect(tensors2.length).toBe(tensors.length);
    expect(tensors2.every((t, i) => Buffer.from(t).equals(tensors[i]))).toBe(true);
  });
});
