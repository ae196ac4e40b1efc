// Prefix-cache benchmark: 8 agents x 6 turns on the shipped model. Every agent's conversation
// starts with one shared system prompt and tools block; each turn appends the model's answer, a
// tool result and a new message to the agent's own history. The same workload runs with the
// prefix cache off and on, in one process. Prints prefill tokens computed, time to first token
// (p50/p95) and total time of each; the upper bound (prompt tokens a perfect page-aligned cache
// would skip) and the fraction of it reached; and whether every output was the same.
// Use: npm run bench:prefix [-- --agents 8 --turns 6 --numerics exact]
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createEngine, type Engine } from '../src/index.js';
import type { SamplingParams, SeqHandle } from '../src/engine/index.js';
import type { Numerics } from '../src/model/index.js';
import { percentile } from './stats.js';

const { values: args } = parseArgs({
  options: { agents: { type: 'string', default: '8' }, turns: { type: 'string', default: '6' }, numerics: { type: 'string' } },
});
const NUMERICS = args.numerics as Numerics | undefined;
const AGENTS = Number(args.agents);
const TURNS = Number(args.turns);
const ANSWER_TOKENS = 6;

const SYSTEM = 'You are an agent reading War and Peace. Tools: search(q) finds passages; who(name) describes a person. ' +
  'Answer in one sentence.';
const OPENINGS = ['Pierre', 'Natasha', 'Andrew', 'Mary', 'Rostov', 'Sonya', 'Kutuzov', 'Denisov'];

interface Turn {
  promptTokens: number;
  cachedTokens: number;
  /** A perfect page-aligned cache's skip when the request was sent. */
  bound: number;
  ttftMs: number;
  tokens: number[];
}

interface RunResult {
  seconds: number;
  turns: Turn[][];
}

function longestCommonPrefix(a: readonly number[], b: readonly number[]): number {
  let n = 0;
  while (n < a.length && n < b.length && a[n] === b[n]) n++;
  return n;
}

async function runWorkload(engine: Engine): Promise<RunResult> {
  const core = engine.core!;
  const tok = core.model.tokenizer;
  const page = core.kv.pageSize;
  const head = tok.encode(SYSTEM);
  /** Token runs whose K/V were computed or are being computed (every prompt sent, every finished answer). */
  const known: number[][] = [];
  const bound = (prompt: readonly number[]) => {
    const best = Math.max(0, ...known.map((k) => longestCommonPrefix(k, prompt)));
    return Math.floor(Math.min(best, prompt.length - 1) / page) * page;
  };
  const agent = async (a: number): Promise<Turn[]> => {
    let history = [...head, ...tok.encode(`\nuser: Tell me about ${OPENINGS[a % OPENINGS.length]}.\nassistant:`, { addBos: false })];
    const turns: Turn[] = [];
    for (let t = 0; t < TURNS; t++) {
      if (history.length + ANSWER_TOKENS >= core.contextLength) throw new Error(`agent ${a} turn ${t}: history of ${history.length} tokens outgrew the context`);
      const b = bound(history);
      known.push(history);
      const sent = performance.now();
      const handle: SeqHandle = core.submit(history, GREEDY);
      const tokens: number[] = [];
      let first = 0;
      for await (const e of handle.events) {
        if (e.type === 'token') {
          first ||= performance.now();
          tokens.push(e.tokenId);
        }
      }
      turns.push({ promptTokens: history.length, cachedTokens: handle.timings.cachedTokens, bound: b, ttftMs: first - sent, tokens });
      known.push([...history, ...tokens.slice(0, -1)]);
      const tool = tok.encode(`\ntool: ${t + 1} ok\nuser: ${OPENINGS[(a + t + 1) % OPENINGS.length]}?\nassistant:`, { addBos: false });
      history = [...history, ...tokens, ...tool];
    }
    return turns;
  };
  const start = performance.now();
  const turns = await Promise.all(Array.from({ length: AGENTS }, (_, a) => agent(a)));
  return { seconds: (performance.now() - start) / 1000, turns };
}

const GREEDY: SamplingParams = {
  maxTokens: ANSWER_TOKENS, temperature: 0, topK: 0, topP: 1, minP: 0, frequencyPenalty: 0, presencePenalty: 0,
  repetitionPenalty: 1, logitBias: new Map(), seed: 0, stopIds: [], stopStrings: [],
};

/** Compiles every pipeline (prefill and decode shapes) with text the workload never uses, so nothing it caches helps. */
async function warmUp(engine: Engine): Promise<void> {
  const core = engine.core!;
  const prompts = ['Moscow burned while the army', 'At the ball the music played on and on'].map((t) => core.model.tokenizer.encode(t));
  await Promise.all(prompts.map(async (ids) => {
    for await (const _ of core.submit(ids, GREEDY).events);
  }));
  await engine.resetChat();
}

const model = fileURLToPath(new URL('../models/wg-tolstoy-q8_0.gguf', import.meta.url));
const results: [string, RunResult][] = [];
let adapterName = '';
for (const [name, prefixCache] of [['no prefix cache', false], ['prefix cache', true]] as const) {
  const engine = await createEngine({ model, prefixCache, numerics: NUMERICS });
  try {
    await warmUp(engine);
    results.push([name, await runWorkload(engine)]);
    const a = engine.model!.rt.gpu.adapter;
    adapterName = `${a.vendor} ${a.architecture} ${a.description}`;
  } finally {
    await engine.destroy();
  }
}

const ms = (x: number) => x.toFixed(0);
const requests = AGENTS * TURNS;
console.log(`\n${AGENTS} agents x ${TURNS} turns (${requests} requests, greedy, ${ANSWER_TOKENS} tokens each), wg-tolstoy-q8_0, numerics ${NUMERICS ?? 'default'}, ${adapterName}\n`);
console.log('| run | prompt tokens | prefill tokens computed | cached tokens | TTFT p50 / p95 ms | total s |');
console.log('|---|---|---|---|---|---|');
for (const [name, r] of results) {
  const all = r.turns.flat();
  const prompt = all.reduce((n, t) => n + t.promptTokens, 0);
  const cached = all.reduce((n, t) => n + t.cachedTokens, 0);
  const ttft = all.map((t) => t.ttftMs);
  console.log(`| ${name} | ${prompt} | ${prompt - cached} | ${cached} | ${ms(percentile(ttft, 50))} / ${ms(percentile(ttft, 95))} | ${r.seconds.toFixed(1)} |`);
}
const [off, on] = results.map(([, r]) => r);
const onTurns = on.turns.flat();
const bound = onTurns.reduce((n, t) => n + t.bound, 0);
const cached = onTurns.reduce((n, t) => n + t.cachedTokens, 0);
const same = off.turns.every((turns, a) => turns.every((t, i) => t.tokens.join() === on.turns[a][i].tokens.join()));
const p50 = (r: RunResult) => percentile(r.turns.flat().map((t) => t.ttftMs), 50);
console.log(`\nupper bound (a perfect page-aligned cache): ${bound} prompt tokens skipped; reached ${cached} (${((cached / bound) * 100).toFixed(1)}%)`);
console.log(`TTFT p50: ${(p50(off) / p50(on)).toFixed(2)}x lower with the cache; total time ${(off.seconds / on.seconds).toFixed(2)}x lower`);
console.log(`every output the same with the cache on and off: ${same ? 'yes' : 'NO'}`);
