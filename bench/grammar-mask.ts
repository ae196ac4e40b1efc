// CPU time of a grammar's token mask per token, without a GPU: XGrammar's matcher (plus the UTF-8
// guard) walks the tokens of a JSON answer under bench/structured.ts's schema (a long string
// field) and a forced tool call, timing each mask. The engine builds these masks while the GPU runs
// the step's forward pass, so this is CPU time that overlaps the step rather than adds to it.
// Use: npx tsx bench/grammar-mask.ts [MODEL.gguf ...] (default: the shipped model and the 128k-vocabulary llama3-bpe)
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Grammars, type Constraint, type GrammarSpec } from '../src/engine/grammar/index.js';
import { toolGrammar } from '../src/engine/tools/index.js';
import { Metadata, parseGgufHeader } from '../src/model/gguf.js';
import { Tokenizer } from '../src/model/tokenizer.js';

const shared = process.env.WGSERVE_SHARED ?? fileURLToPath(new URL('../../shared', import.meta.url));
const files = process.argv.slice(2).length ? process.argv.slice(2) : [
  fileURLToPath(new URL('../models/wg-tolstoy-q8_0.gguf', import.meta.url)),
  `${shared}/models/wg-llama3-bpe-q8_0.gguf`,
];

const PROSE = 'Prince Andrew looked at the old count, who was sitting by the window with a letter in his hand; ' +
  'the French army had crossed the Niemen, and Natasha ran into the drawing room to tell Princess Mary that Pierre had come back from Moscow. ' +
  'Kutuzov was sitting at the ball, and nobody knew what the morning would bring. «Ça ira», said the old prince — and laughed.';
const STORY: GrammarSpec = {
  type: 'json_schema',
  schema: JSON.stringify({ type: 'object', properties: { story: { type: 'string', minLength: 400 } }, required: ['story'], additionalProperties: false }),
};
const WEATHER = { type: 'object', properties: { city: { type: 'string' }, unit: { enum: ['celsius', 'fahrenheit'] }, days: { type: 'integer' } }, required: ['city', 'unit', 'days'] };

function tokenizerOf(file: string): Tokenizer {
  const bytes = new Uint8Array(readFileSync(file));
  return Tokenizer.fromMetadata(new Metadata(parseGgufHeader(bytes, file, bytes.byteLength).metadata, file));
}

/** The tokens of `text` as generated output (after a newline, so a SentencePiece space prefix is not added). */
function tokensOf(tokenizer: Tokenizer, text: string): number[] {
  const ids = tokenizer.encode(`\n${text}`, { addBos: false });
  const want = [...new TextEncoder().encode(text)].join();
  const start = ids.findIndex((_, k) => ids.slice(k).flatMap((id) => [...tokenizer.tokenToBytes(id)]).join() === want);
  if (start < 0) throw new Error('could not find the text\'s tokens');
  return ids.slice(start);
}

/** Milliseconds of each mask along the walk. */
async function walk(constraint: Constraint, ids: number[]): Promise<number[]> {
  const times: number[] = [];
  for (const id of ids) {
    const start = performance.now();
    await constraint.nextMask();
    times.push(performance.now() - start);
    if (!constraint.accept(id)) throw new Error(`the grammar rejected token ${id}`);
  }
  return times;
}

const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))];

console.log('| model (vocabulary) | output | tokens | mask ms per token: median | p90 | max | mean |');
console.log('|---|---|---|---|---|---|---|');
for (const file of files) {
  const tokenizer = tokenizerOf(file);
  const grammars = await Grammars.create(tokenizer, tokenizer.vocabSize);
  const name = file.split('/').pop()!.replace(/\.gguf$/, '');
  const cases: [string, GrammarSpec, string][] = [
    ["json_schema (story)", STORY, `{"story": "${PROSE} ${PROSE}"}`],
    ['forced tool call (hermes)', toolGrammar('hermes', [{ name: 'get_weather', parameters: WEATHER }], 'required', false)!,
      '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Moscow", "unit": "celsius", "days": 3}}\n</tool_call>'],
  ];
  for (const [label, spec, text] of cases) {
    const compiled = await grammars.compile(spec);
    await walk(await compiled.matcher(), tokensOf(tokenizer, text)); // warm-up: XGrammar's caches
    const times = await walk(await compiled.matcher(), tokensOf(tokenizer, text));
    const mean = times.reduce((a, b) => a + b, 0) / times.length;
    console.log(`| ${name} (${tokenizer.vocabSize}) | ${label} | ${times.length} | ${quantile(times, 0.5).toFixed(3)} | ${quantile(times, 0.9).toFixed(3)} | ` +
      `${Math.max(...times).toFixed(3)} | ${mean.toFixed(3)} |`);
  }
  grammars.dispose();
}
