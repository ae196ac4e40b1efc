// A web-llm app switches to wgserve by changing its import: web-llm's usage example runs
// with `@mlc-ai/web-llm` replaced by wgserve and its model id by the shipped GGUF.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, expect, it, vi } from 'vitest';
import { SHIPPED_MODEL } from '../helpers/engine.js';
import { REPO } from '../helpers/shared.js';

const swapped = join(REPO, 'test/examples/web-llm-chat.swapped.ts');
afterAll(() => rmSync(swapped, { force: true }));

it('web-llm get-started example runs on wgserve with only the import and model id changed', async () => {
  const source = readFileSync(join(REPO, 'test/examples/web-llm-chat.ts'), 'utf8');
  const changed = source
    .replace("from '@mlc-ai/web-llm'", "from '../../src/index.js'")
    .replace("'Llama-3.1-8B-Instruct-q4f32_1-MLC'", JSON.stringify(SHIPPED_MODEL));
  expect(changed.split('\n').filter((line, i) => line !== source.split('\n')[i])).toHaveLength(2);
  writeFileSync(swapped, changed);
  const lines: string[] = [];
  const log = vi.spyOn(console, 'log').mockImplementation((...args: unknown[]) => void lines.push(args.join(' ')));
  try {
    const example = (await import(pathToFileURL(swapped).href)) as { main(): Promise<void> };
    await example.main();
  } finally {
    log.mockRestore();
  }
  const value = (prefix: string) => lines.find((l) => l.startsWith(prefix))?.slice(prefix.length);
  expect(lines.some((l) => /^init: Loaded /.test(l))).toBe(true);
  const reply = value('reply: ');
  expect(reply && reply.length).toBeGreaterThan(10);
  expect(value('usage: ')).toBe('16');
  expect(value('stream usage: ')).toBe('16');
  expect(value('streamed: ')).toBe(reply);
  expect(value('message: ')).toBe(reply);
  expect(value('stats: ')).toMatch(/^prefill: [\d.]+ tokens\/sec, decode: [\d.]+ tokens\/sec/);
});
