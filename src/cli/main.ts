// wgserve command line: generate, tokenize, serve (and, later, bench).
import { parseArgs } from 'node:util';
import { generateCommand } from './generate.js';
import { serveCommand } from './serve.js';
import { tokenizeCommand } from './tokenize.js';

const USAGE = `usage: wgserve <command> [options]

commands:
  generate  [--model FILE] --prompt TEXT [--max-tokens N] [--temperature T] [--seed S] [--json] [--chat]
            [--numerics fast|llama.cpp]
            streams the continuation to stdout, speed to stderr
  tokenize  [--model FILE]   reads one JSON string per line from stdin, prints its token ids (no BOS)
  serve     [--model FILE] [--host H] [--port P] [--kv-memory MB] [--kv-format f16|f32|q8_0|q4_0]
            [--max-batch-tokens N] [--no-prefix-cache] [--policy fcfs|workflow] [--numerics fast|llama.cpp]
            [--starvation-after S|adaptive] [--workflow-ttl S|adaptive]
            [--context-store DIR [--context-store-mb MB]]
            [--max-session-pages N] [--max-sessions N] [--session-unpin-after S] [--session-expire-after S]
            the OpenAI API (/v1/chat/completions, /v1/completions, /v1/models, DELETE /v1/workflows/ID),
            /health and /metrics (Prometheus),
            on http://127.0.0.1:8080 by default (--port 0: any free port);
            --context-store keeps KV pages (q8_0) in DIR across restarts: a prompt that continues a
            stored context restores them instead of prefilling;
            sessions (/v1/sessions) pin at most --max-session-pages KV pages (default half the pool),
            at most --max-sessions are open (256), one idle --session-unpin-after seconds (300) is
            unpinned, one idle --session-expire-after seconds (3600) is destroyed (0: never)
            --policy workflow: a call waits at most --starvation-after seconds before it runs next, and
            a finished call's KV pages stay kept --workflow-ttl seconds for its agent's next call (0:
            none); both default to adaptive (from measured queue times and gaps between calls)

--model defaults to the small model the repo ships (models/wg-tolstoy-q8_0.gguf).`;

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'generate':
        return await generateCommand(parseArgs({ args: rest, options: GENERATE_OPTIONS, strict: true }).values);
      case 'tokenize':
        return await tokenizeCommand(parseArgs({ args: rest, options: { model: { type: 'string' } }, strict: true }).values);
      case 'serve':
        return await serveCommand(parseArgs({ args: rest, options: SERVE_OPTIONS, strict: true }).values);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        console.log(USAGE);
        return command === undefined ? 1 : 0;
      default:
        console.error(`wgserve: unknown command "${command}"\n\n${USAGE}`);
        return 1;
    }
  } catch (e) {
    console.error(`wgserve: ${(e as Error).message}`);
    return 1;
  }
}

const GENERATE_OPTIONS = {
  model: { type: 'string' },
  prompt: { type: 'string' },
  'max-tokens': { type: 'string' },
  temperature: { type: 'string' },
  seed: { type: 'string' },
  json: { type: 'boolean' },
  chat: { type: 'boolean' },
  numerics: { type: 'string' },
} as const;

const SERVE_OPTIONS = {
  model: { type: 'string' },
  host: { type: 'string' },
  port: { type: 'string' },
  'kv-memory': { type: 'string' },
  'kv-format': { type: 'string' },
  'max-batch-tokens': { type: 'string' },
  'no-prefix-cache': { type: 'boolean' },
  policy: { type: 'string' },
  'starvation-after': { type: 'string' },
  'workflow-ttl': { type: 'string' },
  numerics: { type: 'string' },
  'context-store': { type: 'string' },
  'context-store-mb': { type: 'string' },
  'max-session-pages': { type: 'string' },
  'max-sessions': { type: 'string' },
  'session-unpin-after': { type: 'string' },
  'session-expire-after': { type: 'string' },
} as const;
