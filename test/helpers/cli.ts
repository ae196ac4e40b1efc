// Runs the CLI as a user would (node bin/wgserve.mjs): the reference for greedy answers.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { REPO } from './shared.js';

export const BIN = join(REPO, 'bin/wgserve.mjs');

export interface GenerateJson {
  prompt_tokens: number[];
  completion_tokens: number[];
  text: string;
}

/** What `wgserve generate --json --temperature 0` prints: the reference for greedy answers. */
export function generateCli(prompt: string, maxTokens: number, chat: boolean): Promise<GenerateJson> {
  const args = [BIN, 'generate', '--json', '--temperature', '0', '--max-tokens', String(maxTokens), '--prompt', prompt];
  if (chat) args.push('--chat');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(JSON.parse(stdout) as GenerateJson);
      else reject(new Error(`generate exited ${code}\n${stderr}`));
    });
  });
}

