// `wgserve serve --context-store DIR` end to end: a server answers a conversation and is stopped
// (SIGTERM: its pending writes land first); a new server on the same directory answers the next
// turn with the history's pages restored from the store (cached_tokens, /metrics) and exactly the
// text of a server that never stopped (q8_0 live KV: restored pages are the stored bytes).
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parsePrometheus, promValue } from '../helpers/prometheus.js';
import { startServer, stopServer, type Server } from '../helpers/server.js';

const PAGE = 16;
const HISTORY = [
  { role: 'user', content: 'Prince Andrew looked at the old count and said nothing for a while' },
  { role: 'assistant', content: 'The count smiled and went on reading the letter from Moscow.' },
];
const NEXT = { role: 'user', content: 'And what did Natasha say?' };

interface ChatReply {
  choices: { message: { content: string } }[];
  usage: { prompt_tokens: number; prompt_tokens_details?: { cached_tokens: number } };
}

async function chat(server: Server, messages: object[]): Promise<ChatReply> {
  const r = await fetch(`${server.origin}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: server.modelId, messages, temperature: 0, max_tokens: 12 }),
  });
  expect(r.status).toBe(200);
  return (await r.json()) as ChatReply;
}

async function metric(server: Server, name: string): Promise<number | undefined> {
  return promValue(parsePrometheus(await (await fetch(`${server.origin}/metrics`)).text()), name);
}

async function terminate(server: Server): Promise<number | null> {
  server.child.kill('SIGTERM');
  return server.exited;
}

describe('wgserve serve --context-store', () => {
  const servers: Server[] = [];
  let dir = '';
  afterAll(async () => {
    for (const s of servers) await stopServer(s);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('restores a conversation after a restart on the same directory', async () => {
    dir = await mkdtemp(join(tmpdir(), 'wgserve-serve-store-'));
    const args = ['--kv-format', 'q8_0', '--context-store', dir];
    const first = await startServer(args);
    servers.push(first);
    await chat(first, HISTORY.slice(0, 1));
    const uninterrupted = await chat(first, [...HISTORY, NEXT]);
    expect(await metric(first, 'wgserve_context_store_pages_written_total')).toBeGreaterThan(0);
    expect(await terminate(first)).toBe(0);
    expect((await readdir(dir)).filter((f) => f.endsWith('.wgkv')).length).toBeGreaterThan(0);

    const second = await startServer(args);
    servers.push(second);
    const restored = await chat(second, [...HISTORY, NEXT]);
    const prompt = restored.usage.prompt_tokens;
    expect(restored.usage.prompt_tokens_details?.cached_tokens).toBe(Math.floor((prompt - 1) / PAGE) * PAGE);
    expect(restored.choices[0].message.content).toBe(uninterrupted.choices[0].message.content);
    expect(await metric(second, 'wgserve_context_store_restores_total')).toBe(1);
    expect(await metric(second, 'wgserve_context_store_pages_restored_total')).toBe(Math.floor((prompt - 1) / PAGE));
    expect(await metric(second, 'wgserve_context_store_records_dropped_total')).toBe(0);
    expect(await terminate(second)).toBe(0);
  });

  it('refuses --context-store-mb without --context-store, naming the flag', async () => {
    await expect(startServer(['--context-store-mb', '4'])).rejects.toThrow(/--context-store-mb needs --context-store DIR/);
  });
});
