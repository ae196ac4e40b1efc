// Structured output on real models: every output under a schema or grammar parses and validates,
// greedy and sampled, alone and batched with free rows that keep their own output; streaming, n,
// logprobs and max_tokens keep working; a schema XGrammar rejects is a 400 naming the field.
import { Ajv } from 'ajv';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError, createEngine, type ChatCompletion, type ChatCompletionChunk, type Engine } from '../../src/index.js';
import { shippedEngine } from '../helpers/engine.js';
import { getRuntime } from '../helpers/gpu.js';
import { modelPath } from '../helpers/shared.js';

const PERSON = {
  type: 'object',
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 12 },
    age: { type: 'integer', minimum: 0, maximum: 120 },
    side: { enum: ['French', 'Russian'] },
    alive: { type: 'boolean' },
  },
  required: ['name', 'age', 'side', 'alive'],
  additionalProperties: false,
};
const validatePerson = new Ajv().compile(PERSON);
const personFormat = { type: 'json_schema' as const, json_schema: { name: 'person', schema: PERSON, strict: true } };

const ask = (content: string, extra: object = {}) => ({ messages: [{ role: 'user' as const, content }], ...extra });

/** Each choice ended on its own ('stop') and its text is a person. */
function expectPeople(r: ChatCompletion): void {
  for (const c of r.choices) {
    expect(c.finish_reason, c.message.content ?? '').toBe('stop');
    const value: unknown = JSON.parse(c.message.content ?? '');
    expect(validatePerson(value), `${c.message.content} ${JSON.stringify(validatePerson.errors)}`).toBe(true);
  }
}

async function apiError(p: Promise<unknown>): Promise<ApiError> {
  const e = await p.then(() => null, (err: unknown) => err);
  expect(e).toBeInstanceOf(ApiError);
  return e as ApiError;
}

describe('structured output on the shipped model (prose only, so the mask does all the work)', () => {
  let engine: Engine;
  beforeAll(async () => {
    engine = await shippedEngine();
  });
  afterAll(() => engine?.destroy());

  it('a json_schema response validates, greedy and sampled, batched with free requests that are unchanged', async () => {
    const prompt = 'Describe Pierre as JSON.';
    const freeAlone = await engine.chat.completions.create(ask('Prince Andrew looked at', { max_tokens: 24, temperature: 0 }));
    const [greedy, sampled, free, freeSampled] = await Promise.all([
      engine.chat.completions.create(ask(prompt, { response_format: personFormat, temperature: 0, max_tokens: 120 })),
      engine.chat.completions.create(ask(prompt, { response_format: personFormat, temperature: 1, seed: 7, n: 4, max_tokens: 120 })),
      engine.chat.completions.create(ask('Prince Andrew looked at', { max_tokens: 24, temperature: 0 })),
      engine.chat.completions.create(ask('Natasha', { max_tokens: 24, temperature: 0.8, seed: 3 })),
    ]);
    expectPeople(greedy);
    expectPeople(sampled);
    expect(new Set(sampled.choices.map((c) => c.message.content)).size).toBeGreaterThan(1);
    expect(free.choices[0].message.content).toBe(freeAlone.choices[0].message.content);
    expect(() => JSON.parse(freeSampled.choices[0].message.content ?? '')).toThrow();
    // The same seed gives the same constrained output, whatever else was batched.
    const again = await engine.chat.completions.create(ask(prompt, { response_format: personFormat, temperature: 1, seed: 7, n: 4, max_tokens: 120 }));
    expect(again.choices.map((c) => c.message.content)).toEqual(sampled.choices.map((c) => c.message.content));
  });

  it('json_object gives a JSON object; an EBNF grammar gives its language', async () => {
    const obj = await engine.chat.completions.create(ask('Natasha', { response_format: { type: 'json_object' }, temperature: 0.7, seed: 1, max_tokens: 200 }));
    if (obj.choices[0].finish_reason === 'stop') expect(typeof JSON.parse(obj.choices[0].message.content ?? '')).toBe('object');
    else expect(obj.choices[0].message.content?.startsWith('{')).toBe(true);
    const grammar = 'root ::= ("yes" | "no") ", " [0-9] [0-9]? " soldiers"';
    const r = await engine.chat.completions.create(ask('Was it war?', { response_format: { type: 'grammar', grammar }, temperature: 1, seed: 2, n: 3, max_tokens: 20 }));
    for (const c of r.choices) {
      expect(c.finish_reason).toBe('stop');
      expect(c.message.content).toMatch(/^(yes|no), [0-9][0-9]? soldiers$/);
    }
  });

  it('streams, with logprobs and n > 1: the deltas of each choice are a valid person', async () => {
    const stream = await engine.chat.completions.create(ask('Who?', {
      response_format: personFormat, stream: true, n: 2, temperature: 0.9, seed: 11, logprobs: true, top_logprobs: 2, max_tokens: 120,
    }));
    const text = ['', ''];
    const finish: (string | null)[] = [null, null];
    let logprobTokens = 0;
    for await (const chunk of stream as unknown as AsyncIterable<ChatCompletionChunk>) {
      for (const c of chunk.choices) {
        text[c.index] += c.delta.content ?? '';
        logprobTokens += c.logprobs?.content?.length ?? 0;
        if (c.finish_reason) finish[c.index] = c.finish_reason;
      }
    }
    expect(finish).toEqual(['stop', 'stop']);
    for (const t of text) expect(validatePerson(JSON.parse(t)), t).toBe(true);
    expect(logprobTokens).toBeGreaterThan(10);
  });

  it('max_tokens still cuts a constrained output ("length"), and stop strings still end it', async () => {
    const cut = await engine.chat.completions.create(ask('Who?', { response_format: personFormat, temperature: 0, max_tokens: 5 }));
    expect(cut.choices[0].finish_reason).toBe('length');
    expect(cut.usage?.completion_tokens).toBe(5);
    const head = cut.choices[0].message.content ?? '';
    expect(head.startsWith('{"name": "') || '{"name": "'.startsWith(head), head).toBe(true);
    const stopped = await engine.chat.completions.create(ask('Who?', { response_format: personFormat, temperature: 0, max_tokens: 120, stop: ['"age"'] }));
    expect(stopped.choices[0].finish_reason).toBe('stop');
    expect(stopped.choices[0].message.content).toMatch(/^\{"name": ".{1,12}", $/);
  });

  it('a schema or grammar XGrammar rejects is a 400 naming response_format; the engine carries on', async () => {
    const bad = await apiError(engine.chat.completions.create(ask('x', { response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 5 } } } })));
    expect(bad.status).toBe(400);
    expect(bad.param).toBe('response_format');
    expect(bad.message).toMatch(/response_format cannot be compiled: .*Type should be a string/);
    const ebnf = await apiError(engine.chat.completions.create(ask('x', { response_format: { type: 'grammar', grammar: 'root ::= "a" |' } })));
    expect(ebnf.message).toMatch(/EBNF parser error/);
    const shape = await apiError(engine.chat.completions.create(ask('x', { response_format: { type: 'xml' } })));
    expect(shape.param).toBe('response_format.type');
    const noName = await apiError(engine.chat.completions.create(ask('x', { response_format: { type: 'json_schema', json_schema: { schema: PERSON } } })));
    expect(noName.param).toBe('response_format.json_schema.name');
    expectPeople(await engine.chat.completions.create(ask('Who?', { response_format: personFormat, temperature: 0, max_tokens: 120 })));
    await engine.core!.idle();
    expect(engine.core!.kv.pool.usedPages).toBe(0);
  });

  it('text completions take response_format too', async () => {
    const r = await engine.completions.create({ prompt: 'Pierre:', response_format: personFormat, temperature: 0.5, seed: 4, max_tokens: 120 } as never);
    const value: unknown = JSON.parse((r as { choices: { text: string }[] }).choices[0].text);
    expect(validatePerson(value)).toBe(true);
  });
});

const WEATHER_PARAMS = {
  type: 'object',
  properties: { city: { type: 'string', maxLength: 16 }, unit: { enum: ['celsius', 'fahrenheit'] }, days: { type: 'integer', minimum: 1, maximum: 7 } },
  required: ['city', 'unit', 'days'],
  additionalProperties: false,
};
const TOOLS = [
  { type: 'function' as const, function: { name: 'get_weather', description: 'Weather forecast', parameters: WEATHER_PARAMS } },
  { type: 'function' as const, function: { name: 'get_time', parameters: { type: 'object', properties: { zone: { enum: ['UTC', 'MSK'] } }, required: ['zone'], additionalProperties: false } } },
];
const validateWeather = new Ajv().compile(WEATHER_PARAMS);

describe('tool calls on the shipped model', () => {
  let engine: Engine;
  beforeAll(async () => {
    engine = await shippedEngine();
  });
  afterAll(() => engine?.destroy());

  // The tokenizer spells JSON mostly byte by byte: a call is about 100 tokens.
  it('tool_choice "required" and a named function give well-formed calls of the tools (finish_reason tool_calls)', async () => {
    const [required, named] = await Promise.all([
      engine.chat.completions.create(ask('Weather in Moscow?', { tools: TOOLS, tool_choice: 'required', parallel_tool_calls: false, temperature: 1, seed: 3, n: 3, max_tokens: 220 })),
      engine.chat.completions.create(ask('Weather in Moscow?', { tools: TOOLS, tool_choice: { type: 'function', function: { name: 'get_weather' } }, temperature: 0, max_tokens: 220 })),
    ]);
    for (const c of [...required.choices, ...named.choices]) {
      expect(c.finish_reason, c.message.content ?? '').toBe('tool_calls');
      expect(c.message.tool_calls).toHaveLength(1);
      const call = c.message.tool_calls![0];
      expect(call.type).toBe('function');
      expect(call.id).toMatch(/^call_[0-9a-f]{24}$/);
      const args: unknown = JSON.parse(call.function.arguments);
      if (call.function.name === 'get_weather') expect(validateWeather(args), call.function.arguments).toBe(true);
      else expect(call.function.name).toBe('get_time');
    }
    expect(named.choices[0].message.tool_calls![0].function.name).toBe('get_weather');
  });

  it('streams a forced call as OpenAI does: id, type and name first, then argument pieces that join to the call', async () => {
    const request = ask('Weather?', { tools: TOOLS, tool_choice: { type: 'function', function: { name: 'get_weather' } }, temperature: 0.8, seed: 9, max_tokens: 220 });
    const whole = await engine.chat.completions.create(request);
    const stream = await engine.chat.completions.create({ ...request, stream: true });
    let name = '';
    let args = '';
    let id = '';
    let argPieces = 0;
    let finish = '';
    for await (const chunk of stream as unknown as AsyncIterable<ChatCompletionChunk>) {
      const choice = chunk.choices[0];
      if (!choice) continue;
      expect(choice.delta.content ?? '').toBe('');
      for (const call of choice.delta.tool_calls ?? []) {
        expect(call.index).toBe(0);
        if (call.id) {
          expect(id).toBe('');
          id = call.id;
          name = call.function.name ?? '';
          expect(call.type).toBe('function');
        } else {
          expect(id).not.toBe('');
          argPieces++;
        }
        args += call.function.arguments;
      }
      finish = choice.finish_reason ?? finish;
    }
    expect(finish).toBe('tool_calls');
    expect(name).toBe('get_weather');
    expect(argPieces).toBeGreaterThan(3);
    expect(args).toBe(whole.choices[0].message.tool_calls![0].function.arguments);
    expect(validateWeather(JSON.parse(args))).toBe(true);
  });

  it('"none" never parses calls', async () => {
    const none = await engine.chat.completions.create(ask('Natasha', { tools: TOOLS, tool_choice: 'none', temperature: 0, max_tokens: 24 }));
    expect(none.choices[0].finish_reason).toBe('length');
    expect(none.choices[0].message.tool_calls).toBeUndefined();
  });
});

describe.each(['wg-llama-spm-q8_0.gguf', 'wg-llama3-bpe-q8_0.gguf'])('structured output on %s (random weights)', (file) => {
  let engine: Engine;
  beforeAll(async () => {
    engine = await createEngine({ model: modelPath(file), runtime: await getRuntime(), contextLength: 1024 });
  });
  afterAll(() => engine?.destroy());

  it('greedy and sampled outputs validate, batched with a free request', async () => {
    const [greedy, sampled, free] = await Promise.all([
      engine.chat.completions.create(ask('Who?', { response_format: personFormat, temperature: 0, max_tokens: 150 })),
      engine.chat.completions.create(ask('Who?', { response_format: personFormat, temperature: 1, seed: 5, n: 3, max_tokens: 150 })),
      engine.chat.completions.create(ask('Who?', { temperature: 0, max_tokens: 16 })),
    ]);
    expectPeople(greedy);
    expectPeople(sampled);
    expect(free.choices[0].finish_reason).toBe('length');
  });

  it('a forced tool call is well formed in the template family\'s format', async () => {
    // One call each (a random model would go on adding parallel calls until max_tokens).
    const r = await engine.chat.completions.create(ask('Weather?', { tools: TOOLS, tool_choice: 'required', parallel_tool_calls: false, temperature: 1, seed: 8, n: 2, max_tokens: 150 }));
    for (const c of r.choices) {
      expect(c.finish_reason, c.message.content ?? '').toBe('tool_calls');
      for (const call of c.message.tool_calls!) expect(['get_weather', 'get_time']).toContain(call.function.name);
      const weather = c.message.tool_calls!.filter((call) => call.function.name === 'get_weather');
      for (const call of weather) expect(validateWeather(JSON.parse(call.function.arguments)), call.function.arguments).toBe(true);
    }
  });

  it('"auto": free text until the trigger; the tools are in the prompt (the template has none)', async () => {
    const r = await engine.chat.completions.create(ask('Hello', { tools: TOOLS, temperature: 0, max_tokens: 24 }));
    const c = r.choices[0];
    if (c.message.tool_calls) {
      expect(c.finish_reason).toBe('tool_calls');
      for (const call of c.message.tool_calls) expect(['get_weather', 'get_time']).toContain(call.function.name);
    } else {
      expect(c.message.content?.length).toBeGreaterThan(0);
    }
    expect(r.usage.prompt_tokens).toBeGreaterThan(200); // the tool system prompt
  });
});
