// Continuous batching benchmark: the same 16 chat requests run (a) one at a time and (b) all at
// once through the engine, on the shipped model, in one run. Prints generated tokens/s of each
// and their ratio, time to first token and inter-token latency (p50/p95), and peak KV pages.
// Use: npm run bench:batching [-- --requests 16 --max-tokens 48 --numerics fast|llama.cpp --model FILE]
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createEngine, type ChatCompletionRequestStreaming, type Engine } from '../src/index.js';
import { percentile } from './stats.js';

const { values: args } = parseArgs({
  options: {
    requests: { type: 'string', default: '16' },
    'max-tokens': { type: 'string', default: '48' },
    numerics: { type: 'string', default: 'fast' },
    model: { type: 'string' },
  },
});
if (args.numerics !== 'fast' && args.numerics !== 'llama.cpp') throw new Error(`--numerics must be fast or llama.cpp, not ${args.numerics}`);
const NUMERICS = args.numerics;
const REQUESTS = Number(args.requests);
const MAX_TOKENS = Number(args['max-tokens']);

const OPENINGS = [
  'Prince Andrew looked at', 'The old count', 'Natasha ran into the drawing room', 'Pierre said',
  'The French army', 'Princess Mary', 'In the morning the regiment', 'Rostov rode up to',
  'Kutuzov was sitting', 'Moscow burned while', 'Denisov laughed and', 'At the ball',
  'Sonya did not know', 'The prince was angry', 'Anna Pavlovna', 'After the battle',
];

interface RequestTrace {
  arrivedAt: number;
  tokenTimes: number[];
}

function request(i: number): ChatCompletionRequestStreaming {
  return {
    messages: [{ role: 'user', content: OPENINGS[i % OPENINGS.length] }],
    max_tokens: MAX_TOKENS,
    temperature: 0.8,
    seed: i,
    ignore_eos: true,
    stream: true,
  };
}

async function run(engine: Engine, i: number): Promise<RequestTrace> {
  const trace: RequestTrace = { arrivedAt: performance.now(), tokenTimes: [] };
  const stream = await engine.chat.completions.create(request(i));
  for await (const chunk of stream) {
    if (chunk.choices[0]?.delta.content) trace.tokenTimes.push(performance.now());
  }
  return trace;
}

interface Summary {
  seconds: number;
  tokens: number;
  ttft: number[];
  itl: number[];
  peakPages: number;
}

async function measure(engine: Engine, concurrent: boolean): Promise<Summary> {
  const start = performance.now();
  let traces: RequestTrace[];
  if (concurrent) {
    traces = await Promise.all(Array.from({ length: REQUESTS }, (_, i) => run(engine, i)));
  } else {
    traces = [];
    for (let i = 0; i < REQUESTS; i++) traces.push(await run(engine, i));
  }
  const seconds = (performance.now() - start) / 1000;
  const steps = engine.core!.metrics.stepsSince(start);
  return {
    seconds,
    tokens: engine.core!.metrics.snapshot().generatedTokens,
    ttft: traces.map((t) => t.tokenTimes[0] - t.arrivedAt),
    itl: traces.flatMap((t) => t.tokenTimes.slice(1).map((x, k) => x - t.tokenTimes[k])),
    peakPages: Math.max(...steps.map((s) => s.pagesUsed)),
  };
}

const model = args.model ?? fileURLToPath(new URL('../models/wg-tolstoy-q8_0.gguf', import.meta.url));
const engine = await createEngine({ model, numerics: NUMERICS });
try {
  // Compile every pipeline first (prefill and decode shapes), so neither side pays for it.
  await Promise.all([0, 1].map((i) => run(engine, i)));
  await engine.resetChat();
  const sequential = await measure(engine, false);
  await engine.resetChat();
  const batched = await measure(engine, true);
  const adapter = engine.model!.rt.gpu.adapter;
  const ms = (x: number) => x.toFixed(0);
  const rows: [string, Summary][] = [['one at a time', sequential], ['continuous batching', batched]];
  console.log(`\n${REQUESTS} chat requests x ${MAX_TOKENS} tokens, ${model.split('/').pop()}, ${NUMERICS} kernels, ${adapter.vendor} ${adapter.architecture} ${adapter.description}\n`);
  console.log('| run | generated tokens/s | TTFT p50 / p95 ms | ITL p50 / p95 ms | peak KV pages | wall s |');
  console.log('|---|---|---|---|---|---|');
  for (const [name, s] of rows) {
    console.log(`| ${name} | ${(s.tokens / s.seconds).toFixed(1)} | ${ms(percentile(s.ttft, 50))} / ${ms(percentile(s.ttft, 95))} | ` +
      `${ms(percentile(s.itl, 50))} / ${ms(percentile(s.itl, 95))} | ${s.peakPages} of ${engine.core!.kv.pool.totalPages} | ${s.seconds.toFixed(1)} |`);
  }
  console.log(`\nbatched / one at a time: ${((batched.tokens / batched.seconds) / (sequential.tokens / sequential.seconds)).toFixed(2)}x generated tokens/s`);
} finally {
  await engine.destroy();
}
