// `wgserve serve --port 0` spawned as a user runs it (the shipped model), resolved once it
// prints the URL it serves on.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { BIN } from './cli.js';
import { REPO } from './shared.js';

export const START_TIMEOUT_MS = 60_000;

export interface Server {
  child: ChildProcessWithoutNullStreams;
  modelId: string;
  /** http://host:port, without /v1. */
  origin: string;
  stderr(): string;
  exited: Promise<number | null>;
}

export function startServer(args: string[] = []): Promise<Server> {
  const child = spawn(process.execPath, [BIN, 'serve', '--port', '0', ...args], { cwd: REPO, stdio: 'pipe' });
  child.stdin.end();
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
  return new Promise((resolve, reject) => {
    const fail = (why: string) => reject(new Error(`${why}\n--- stdout\n${stdout}\n--- stderr\n${stderr}`));
    const timer = setTimeout(() => fail('the server did not print its URL in time'), START_TIMEOUT_MS);
    child.stdout.on('data', () => {
      const m = /^wgserve: serving (\S+) on (http:\/\/\S+)\/v1$/m.exec(stdout);
      if (!m) return;
      clearTimeout(timer);
      resolve({ child, modelId: m[1], origin: m[2], stderr: () => stderr, exited });
    });
    void exited.then((code) => fail(`the server exited (${code}) before serving`));
  });
}

/** Stops the server (SIGKILL if it is still running) and waits for it. */
export async function stopServer(server: Server | undefined): Promise<void> {
  if (!server || server.child.exitCode !== null || server.child.signalCode !== null) return;
  server.child.kill('SIGKILL');
  await server.exited;
}
