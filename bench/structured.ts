// Structured-output benchmark: the same chat requests decoded free and under a JSON schema (a
// long string field, so both write about as many tokens), one at a time and all at once, in one
// run on the shipped model. Each repetition runs free, constrained, constrained, free (so a
// machine whose speed drifts weighs on both alike) and gives one constrained / free ratio; the
// table shows the median ratio and its spread over the repetitions, the median tokens/s, and
// the CPU time XGrammar's masks take per token (matcher + UTF-8 guard, measured around each
// mask; since masks are built while the GPU runs the forward pass, this time overlaps the step).
// Use: npm run bench:structured [-- --requests 8 --max-tokens 48 --repetitions 5 --model FILE.gguf]
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createEngine, type ChatCompletionRequestBase, type Engine } from '../src/index.js';

const { values: args } = parseArgs({
  options: { requests: { type: 'string', default: '8' }, 'max-tokens': { type: 'string', default: '48' }, repetitions: { type: 'string', default: '5' }, model: { type: 'string' } },
});
const REQUESTS = Number(args.requests);
const MAX_TOKENS = Number(args['max-tokens']);
const REPETITIONS = Number(args.repetitions);

const OPENINGS = ['Prince Andrew looked at', 'The old count', 'Natasha ran into the drawing room', 'Pierre said', 'The French army', 'Princess Mary', 'Kutuzov was sitting', 'At the ball'];
// A string long enough that max_tokens ends it, as it ends the free text.
const SCHEMA = { type: 'object', properties: { story: { type: 'string', minLength: 400 } }, required: ['story'], additionalProperties: false };

function request(i: number, constrained: boolean): ChatCompletionRequestBase {
  return {
    messages: [{ role: 'user', content: OPENINGS[i % OPENINGS.length] }],
    max_tokens: MAX_TOKENS,
    temperature: 0.8,
    seed: i,
    ignore_eos: true,
    ...(constrained ? { response_format: { type: 'json_schema', json_schema: { name: 'story', schema: SCHEMA } } } : {}),
  };
}

interface Run {
  tokens: number;
  seconds: number;
  masks: number;
  maskMs: number;
  skipped: number;
}

async function measure(engine: Engine, constrained: boolean, concurrent: boolean): Promise<Run> {
  const stats = (await engine.grammars()).stats;
  const before = { ...stats };
  const start = performance.now();
  const one = async (i: number) => {
    const r = await engine.chat.completions.create(request(i, constrained));
    return 'usage' in r ? r.usage.completion_tokens : 0;
  };
  let tokens = 0;
  if (concurrent) tokens = (await Promise.all(Array.from({ length: REQUESTS }, (_, i) => one(i)))).reduce((a, b) => a + b, 0);
  else for (let i = 0; i < REQUESTS; i++) tokens += await one(i);
  return {
    tokens,
    seconds: (performance.now() - start) / 1000,
    masks: stats.masks - before.masks,
    maskMs: stats.milliseconds - before.milliseconds,
    skipped: stats.skipped - before.skipped,
  };
}

const sum = (a: Run, b: Run): Run => ({
  tokens: a.tokens + b.tokens, seconds: a.seconds + b.seconds, masks: a.masks + b.masks, maskMs: a.maskMs + b.maskMs, skipped: a.skipped + b.skipped,
});
const rate = (r: Run) => r.tokens / r.seconds;
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const model = args.model ?? fileURLToPath(new URL('../models/wg-tolstoy-q8_0.gguf', import.meta.url));
const engine = await createEngine({ model });
try {
  // Warm up: pipelines for every shape, XGrammar's tokenizer info and the compiled schema.
  await Promise.all([0, 1].flatMap((i) => [true, false].map((c) => engine.chat.completions.create({ ...request(i, c), max_tokens: 4 }))));
  const adapter = engine.model!.rt.gpu.adapter;
  console.log(`\n${REQUESTS} chat requests x ${MAX_TOKENS} tokens, ${REPETITIONS} repetitions, ${engine.modelId} (vocab ${engine.model!.config.vocabSize}), ` +
    `${adapter.vendor} ${adapter.architecture} ${adapter.description}\n`);
  console.log('| run | free tokens/s (median) | constrained tokens/s (median) | constrained / free: median | min–max | mask CPU ms per token (median) | masks skipped |');
  console.log('|---|---|---|---|---|---|---|');
  for (const concurrent of [false, true]) {
    const reps: { free: Run; constrained: Run }[] = [];
    for (let r = 0; r < REPETITIONS; r++) {
      const free1 = await measure(engine, false, concurrent);
      const constrained = sum(await measure(engine, true, concurrent), await measure(engine, true, concurrent));
      reps.push({ free: sum(free1, await measure(engine, false, concurrent)), constrained });
    }
    const ratios = reps.map((r) => rate(r.constrained) / rate(r.free));
    const maskMs = reps.map((r) => r.constrained.maskMs / Math.max(1, r.constrained.masks));
    const masks = reps.reduce((n, r) => n + r.constrained.masks, 0);
    const skipped = reps.reduce((n, r) => n + r.constrained.skipped, 0);
    console.log(`| ${concurrent ? 'all at once' : 'one at a time'} | ${median(reps.map((r) => rate(r.free))).toFixed(1)} | ${median(reps.map((r) => rate(r.constrained))).toFixed(1)} | ` +
      `${median(ratios).toFixed(2)}x | ${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}x | ${median(maskMs).toFixed(3)} | ${skipped} of ${masks} |`);
  }
} finally {
  await engine.destroy();
}
