// The command line end to end: `node bin/wgserve.mjs` spawned as a user would run it (the
// environment is inherited, so SwiftShader is found as in scripts/test.sh). tokenize against
// llama.cpp's vectors, generate against llama.cpp's greedy golden, speed report, seeded sampling,
// and the errors a user meets (missing, foreign and truncated files, bad flags, bad input).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Metadata, parseGgufHeader } from '../../src/model/gguf.js';
import { Tokenizer } from '../../src/model/index.js';
import { ggufSpec, writeGguf } from '../helpers/gguf-writer.js';
import { golden, modelPath, REPO, sharedPath, type GoldenCase } from '../helpers/shared.js';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

const SPAWN_TIMEOUT_MS = 100_000;

/** Runs `node bin/wgserve.mjs ...args` in the repo, with `input` on stdin. */
function wgserve(args: string[], input = ''): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(REPO, 'bin/wgserve.mjs'), ...args], { cwd: REPO, stdio: 'pipe' });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => child.kill('SIGKILL'), SPAWN_TIMEOUT_MS);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    // A command that fails before reading stdin closes it: that is not this test's error.
    child.stdin.on('error', () => {});
    child.stdin.end(input);
  });
}

/** Fails with everything the command printed, so a broken run explains itself. */
function expectExit(r: Run, code: number): void {
  expect(r.code, `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr}`).toBe(code);
}

interface GenerateJson {
  prompt_tokens: number[];
  completion_tokens: number[];
  text: string;
}

function parseJsonOutput(r: Run): GenerateJson {
  expectExit(r, 0);
  const lines = r.stdout.trim().split('\n');
  expect(lines, 'generate --json prints one line').toHaveLength(1);
  return JSON.parse(lines[0]) as GenerateJson;
}

interface Vector {
  text: string;
  tokens: number[];
}
const VECTORS = JSON.parse(readFileSync(sharedPath('goldens', 'tokenizer-vectors.json'), 'utf8')) as {
  models: Record<string, Vector[]>;
};

function tokenizerOf(path: string): Tokenizer {
  const bytes = new Uint8Array(readFileSync(path));
  const header = parseGgufHeader(bytes, path, bytes.byteLength);
  return Tokenizer.fromMetadata(new Metadata(header.metadata, path));
}

/** Position of llama.cpp's first near tie (top-2 probabilities within 1%), or the length. */
function firstNearTie(c: GoldenCase): number {
  const i = c.top_probs.findIndex(([a, b]) => b && a[1] - b[1] <= 0.01 * a[1]);
  return i < 0 ? c.greedy_tokens.length : i;
}

/** No hardware GPU here: Dawn must run on SwiftShader, and the CLI must say so. */
function noHardwareGpu(): boolean {
  const icd = process.env.VK_ICD_FILENAMES;
  if (icd) return icd.includes('swiftshader');
  return process.platform === 'linux' && !existsSync('/dev/dri') && !existsSync('/dev/nvidia0');
}

const TOLSTOY = 'wg-tolstoy-q8_0.gguf';
const BPE = 'wg-llama3-bpe-q8_0.gguf';

describe('wgserve tokenize', () => {
  async function tokenizeAll(file: string, args: string[]): Promise<void> {
    const vectors = VECTORS.models[file];
    expect(vectors.length).toBeGreaterThan(10);
    const r = await wgserve(['tokenize', ...args], vectors.map((v) => JSON.stringify(v.text) + '\n').join(''));
    expectExit(r, 0);
    const lines = r.stdout.split('\n');
    expect(lines.pop(), 'output ends with a newline').toBe('');
    expect(lines).toHaveLength(vectors.length);
    lines.forEach((line, i) => expect(JSON.parse(line), `${file} vector ${i}: ${JSON.stringify(vectors[i].text)}`).toEqual(vectors[i].tokens));
  }

  it(`--model ${BPE}: every llama.cpp vector, one line each`, async () => {
    await tokenizeAll(BPE, ['--model', modelPath(BPE)]);
  });

  it(`no --model: the shipped models/${TOLSTOY}, every llama.cpp vector`, async () => {
    await tokenizeAll(TOLSTOY, []);
  });

  it('a line that is not JSON fails with exit code 1, naming the line', async () => {
    const r = await wgserve(['tokenize'], '"War"\n"and Peace"\nnot json\n"never read"\n');
    expectExit(r, 1);
    expect(r.stderr).toMatch(/line 3\b.*not JSON/);
    expect(r.stdout.trim().split('\n'), 'lines before the bad one are answered').toHaveLength(2);
  });
});

describe('wgserve generate', () => {
  it('--json greedy agrees with llama.cpp on "Once upon a time", text is the decode of the ids', async () => {
    const path = modelPath(TOLSTOY);
    const c = golden(TOLSTOY).cases.find((g) => g.prompt === 'Once upon a time');
    expect(c, 'golden case "Once upon a time"').toBeDefined();
    const out = parseJsonOutput(await wgserve(['generate', '--json', '--prompt', c!.prompt, '--max-tokens', '32', '--model', path]));

    expect(out.prompt_tokens).toEqual(c!.prompt_tokens);
    expect(out.completion_tokens).toHaveLength(32);
    const tie = firstNearTie(c!);
    expect(out.completion_tokens.slice(0, tie), `greedy tokens up to llama.cpp's first near tie (${tie})`).toEqual(c!.greedy_tokens.slice(0, tie));
    expect(out.text).toBe(tokenizerOf(path).decode(out.completion_tokens));
  });

  it('--numerics llama.cpp (the parity kernels) also gives llama.cpp\'s greedy tokens; a bad value names the flag', async () => {
    const path = modelPath(TOLSTOY);
    const c = golden(TOLSTOY).cases.find((g) => g.prompt === 'Once upon a time')!;
    const out = parseJsonOutput(await wgserve(['generate', '--json', '--numerics', 'llama.cpp', '--prompt', c.prompt, '--max-tokens', '32', '--model', path]));
    const tie = firstNearTie(c);
    expect(out.completion_tokens.slice(0, tie)).toEqual(c.greedy_tokens.slice(0, tie));
    const bad = await wgserve(['generate', '--numerics', 'exact', '--prompt', 'War']);
    expectExit(bad, 1);
    expect(bad.stderr).toContain('--numerics must be fast or llama.cpp');
  });

  it('streams text to stdout, speed to stderr (and says when SwiftShader is used)', async () => {
    const r = await wgserve(['generate', '--prompt', 'Prince Andrew looked at', '--max-tokens', '16']);
    expectExit(r, 0);
    expect(r.stdout.trim()).not.toBe('');
    expect(r.stderr).toMatch(/^prompt: \d+ tokens, [\d.]+ tokens\/s \| generation: \d+ tokens, [\d.]+ tokens\/s$/m);
    if (noHardwareGpu()) expect(r.stderr).toMatch(/^wgserve: .*using SwiftShader/m);
  });

  it('--temperature with the same --seed gives the same output; another seed other tokens', async () => {
    const args = (seed: number) => ['generate', '--json', '--prompt', 'Natasha', '--max-tokens', '16', '--temperature', '0.8', '--seed', String(seed)];
    const a = await wgserve(args(5));
    const b = await wgserve(args(5));
    const other = await wgserve(args(6));
    const outA = parseJsonOutput(a);
    expect(outA.completion_tokens).toHaveLength(16);
    expect(b.stdout).toBe(a.stdout);
    expect(parseJsonOutput(other).completion_tokens).not.toEqual(outA.completion_tokens);
  });
});

describe('wgserve errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'wgserve-cli-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('a missing model file: exit 1, naming the path', async () => {
    const r = await wgserve(['generate', '--model', '/nonexistent.gguf', '--prompt', 'x']);
    expectExit(r, 1);
    expect(r.stderr).toContain('/nonexistent.gguf');
    expect(r.stdout).toBe('');
  });

  it('a file that is not GGUF: exit 1, "not a GGUF file"', async () => {
    const path = join(dir, 'notes.gguf');
    writeFileSync(path, 'These are notes about War and Peace, not a model.\n'.repeat(20));
    const r = await wgserve(['generate', '--model', path, '--prompt', 'x']);
    expectExit(r, 1);
    expect(r.stderr).toContain('not a GGUF file');
    expect(r.stderr).toContain(path);
  });

  it('a truncated model: exit 1, "truncated", naming a tensor', async () => {
    const path = join(dir, 'truncated.gguf');
    writeFileSync(path, readFileSync(modelPath(TOLSTOY)).subarray(0, 600_000));
    const r = await wgserve(['generate', '--model', path, '--prompt', 'x']);
    expectExit(r, 1);
    expect(r.stderr).toMatch(/truncated/);
    expect(r.stderr).toMatch(/tensor [\w.]+weight/);
  });

  it('an absurd context length: served with what the KV cache holds, --json output clean, exit 0', async () => {
    const path = join(dir, 'huge-context.gguf');
    const spec = ggufSpec(new Uint8Array(readFileSync(modelPath(TOLSTOY))));
    spec.metadata = spec.metadata.map(([k, v]) => [k, k === 'llama.context_length' ? { type: 'u32', value: 2 ** 32 - 1 } : v]);
    writeFileSync(path, writeGguf(spec.metadata, spec.tensors));
    const r = await wgserve(['generate', '--json', '--model', path, '--prompt', 'Natasha', '--max-tokens', '4']);
    expect(parseJsonOutput(r).completion_tokens).toHaveLength(4);
    expect(r.stderr).not.toMatch(/error/i);
  });

  it('a prompt longer than the context: exit 1 before generating, stdout empty', async () => {
    const r = await wgserve(['generate', '--json', '--prompt', 'Prince Andrew looked at the sky. '.repeat(100)]);
    expectExit(r, 1);
    expect(r.stderr).toMatch(/the prompt has \d+ tokens; the context holds 256/);
    expect(r.stdout).toBe('');
  });

  it('an unknown command: exit 1 with the usage', async () => {
    const r = await wgserve(['summon']);
    expectExit(r, 1);
    expect(r.stderr).toContain('unknown command "summon"');
    expect(r.stderr).toMatch(/usage: wgserve <command>/);
  });

  it('--max-tokens abc: exit 1, naming the flag', async () => {
    const r = await wgserve(['generate', '--prompt', 'x', '--max-tokens', 'abc']);
    expectExit(r, 1);
    expect(r.stderr).toContain('--max-tokens');
    expect(r.stdout).toBe('');
  });

  // Before the fix these ran: 0 and -3 generated one token, 1.5 two, a negative temperature was greedy.
  it.each([
    ['max-tokens', '0'],
    ['max-tokens', '-3'],
    ['max-tokens', '1.5'],
    ['temperature', '-1'],
    ['seed', '1.5'],
  ])('--%s %s is out of range: exit 1, naming the flag', async (flag, value) => {
    const r = await wgserve(['generate', '--prompt', 'x', `--${flag}=${value}`]);
    expectExit(r, 1);
    expect(r.stderr).toContain(`--${flag} must be`);
    expect(r.stdout).toBe('');
  });
  it.each([
    ['max-session-pages', '-1'],
    ['max-sessions', '0'],
    ['session-unpin-after', 'soon'],
    ['session-expire-after', '-60'],
  ])('serve --%s %s is out of range: exit 1 before loading, naming the flag', async (flag, value) => {
    const r = await wgserve(['serve', '--port', '0', `--${flag}=${value}`]);
    expectExit(r, 1);
    expect(r.stderr).toContain(`--${flag} must be`);
    expect(r.stdout).toBe('');
  });
});
