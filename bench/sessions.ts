// Sessions benchmark: one context (a system prompt) computed once, then 8 agents forked from it,
// each running several turns (its answer and a new message appended every turn), as LanguageModel
// clones do. Runs the workload with the prefix cache alone (every request sends its whole history;
// the context's full pages come from the cache) and with engine sessions (a clone per agent; each
// request continues its agent's session), in one process. Prints prompt tokens computed, time to
// first token (p50/p95), total time, and whether every output was the same.
// Use: npm run bench:sessions [-- --agents 8 --turns 4]
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createEngine, type Engine } from '../src/index.js';
import type { SamplingParams } from '../src/engine/index.js';
import { percentile } from './stats.js';

const { values: args } = parseArgs({ options: { agents: { type: 'string', default: '8' }, turns: { type: 'string', default: '4' } } });
const AGENTS = Number(args.agents);
const TURNS = Number(args.turns);
const ANSWER_TOKENS = 6;
const CONTEXT = 'You are an agent reading War and Peace. Prince Andrew rode on through the long night toward the village, ' +
  'and the army followed him. Answer in one sentence.';
const NAMES = ['Pierre', 'Natasha', 'Andrew', 'Mary', 'Rostov', 'Sonya', 'Kutuzov', 'Denisov'];

const GREEDY: SamplingParams = {
  maxTokens: ANSWER_TOKENS, temperature: 0, topK: 0, topP: 1, minP: 0, frequencyPenalty: 0, presencePenalty: 0,
  repetitionPenalty: 1, logitBias: new Map(), seed: 0, stopIds: [], stopStrings: [],
};

interface Turn { promptTokens: number; cachedTokens: number; ttftMs: number; tokens: number[] }

async function run(engine: Engine, sessions: boolean): Promise<{ seconds: number; turns: Turn[][]; contextComputed: number }> {
  const core = engine.core!;
  const tok = core.model.tokenizer;
  const context = tok.encode(CONTEXT);
  const start = performance.now();
  // The context computed once (LanguageModel.create with initialPrompts).
  const parent = sessions ? core.createSession() : undefined;
  const first = core.submit(context, { ...GREEDY, prefillOnly: true }, parent ? { session: parent } : {});
  for await (const _ of first.events);
  const contextComputed = first.timings.promptTokens - first.timings.cachedTokens;
  const agent = async (a: number): Promise<Turn[]> => {
    const session = parent ? core.cloneSession(parent) : undefined;
    let history = [...context, ...tok.encode(`\nuser: Tell me about ${NAMES[a % NAMES.length]}.\nassistant:`, { addBos: false })];
    const turns: Turn[] = [];
    for (let t = 0; t < TURNS; t++) {
      const sent = performance.now();
      const handle = core.submit(history, GREEDY, session ? { session } : {});
      const tokens: number[] = [];
      let firstAt = 0;
      for await (const e of handle.events) {
        if (e.type !== 'token') continue;
        firstAt ||= performance.now();
        tokens.push(e.tokenId);
      }
      turns.push({ promptTokens: history.length, cachedTokens: handle.timings.cachedTokens, ttftMs: firstAt - sent, tokens });
      history = [...history, ...tokens, ...tok.encode(`\nuser: And ${NAMES[(a + t + 1) % NAMES.length]}?\nassistant:`, { addBos: false })];
    }
    if (session) core.destroySession(session);
    return turns;
  };
  const turns = await Promise.all(Array.from({ length: AGENTS }, (_, a) => agent(a)));
  if (parent) core.destroySession(parent);
  return { seconds: (performance.now() - start) / 1000, turns, contextComputed };
}

/** Compiles every pipeline with text the workload never uses. */
async function warmUp(engine: Engine): Promise<void> {
  const core = engine.core!;
  const prompts = ['Moscow burned while the army', 'At the ball the music played on and on'].map((t) => core.model.tokenizer.encode(t));
  await Promise.all(prompts.map(async (ids) => {
    for await (const _ of core.submit(ids, GREEDY).events);
  }));
  await engine.resetChat();
}

const model = fileURLToPath(new URL('../models/wg-tolstoy-q8_0.gguf', import.meta.url));
const results: [string, Awaited<ReturnType<typeof run>>][] = [];
for (const [name, sessions] of [['prefix cache', false], ['sessions', true]] as const) {
  const engine = await createEngine({ model });
  try {
    await warmUp(engine);
    results.push([name, await run(engine, sessions)]);
  } finally {
    await engine.destroy();
  }
}
console.log(`\n1 context + ${AGENTS} agents x ${TURNS} turns (greedy, ${ANSWER_TOKENS} tokens each), wg-tolstoy-q8_0\n`);
console.log('| run | prompt tokens | computed | TTFT p50 / p95 ms | total s |');
console.log('|---|---|---|---|---|');
for (const [name, r] of results) {
  const all = r.turns.flat();
  const prompt = all.reduce((n, t) => n + t.promptTokens, 0);
  const cached = all.reduce((n, t) => n + t.cachedTokens, 0);
  const ttft = all.map((t) => t.ttftMs);
  console.log(`| ${name} | ${prompt} | ${prompt - cached} (+${r.contextComputed} context) | ${percentile(ttft, 50).toFixed(0)} / ${percentile(ttft, 95).toFixed(0)} | ${r.seconds.toFixed(1)} |`);
}
const [cache, sess] = results.map(([, r]) => r);
const computed = (r: typeof cache) => r.turns.flat().reduce((n, t) => n + t.promptTokens - t.cachedTokens, 0);
const p50 = (r: typeof cache) => percentile(r.turns.flat().map((t) => t.ttftMs), 50);
console.log(`\nprompt tokens computed: ${(computed(cache) / computed(sess)).toFixed(2)}x fewer with sessions; TTFT p50 ${(p50(cache) / p50(sess)).toFixed(2)}x; total ${(cache.seconds / sess.seconds).toFixed(2)}x`);
const same = cache.turns.every((turns, a) => turns.every((t, i) => t.tokens.join() === sess.turns[a][i].tokens.join()));
console.log(`every output the same: ${same ? 'yes' : 'NO'}`);
