// Tool calls: the format chosen by the chat template, parsing recorded outputs of each family
// (whole and streamed: the deltas concatenate to the whole call), the call grammar accepting those
// outputs, and past calls and tool results rendered through a template.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { XGrammar } from '../../src/engine/grammar/xgrammar.js';
import { parseChatRequest } from '../../src/engine/request.js';
import { parseToolOutput, toolCallFormat, toolGrammar, ToolCallStream, type ToolCallFormat, type ToolChoice, type ToolDefinition } from '../../src/engine/tools/index.js';
import { ApiError } from '../../src/engine/errors.js';
import { Metadata, parseGgufHeader } from '../../src/model/gguf.js';
import { Tokenizer } from '../../src/model/tokenizer.js';
import type { Model } from '../../src/model/index.js';
import { modelPath } from '../helpers/shared.js';

const WEATHER: ToolDefinition = {
  name: 'get_weather',
  description: 'Current weather in a city',
  parameters: { type: 'object', properties: { location: { type: 'string' }, unit: { enum: ['celsius', 'fahrenheit'] } }, required: ['location'] },
};
const TIME: ToolDefinition = { name: 'get_time', parameters: { type: 'object', properties: { zone: { type: 'string' } }, required: ['zone'] } };

interface Recorded {
  format: ToolCallFormat;
  text: string;
  content: string;
  calls: { name: string; arguments: unknown }[];
}

// Outputs as the models write them (Qwen 2.5 and Hermes 3, Llama 3.1 / 3.2, Mistral v0.3).
const RECORDED: Recorded[] = [
  {
    format: 'hermes',
    text: '<tool_call>\n{"name": "get_weather", "arguments": {"location": "Paris, France", "unit": "celsius"}}\n</tool_call>',
    content: '',
    calls: [{ name: 'get_weather', arguments: { location: 'Paris, France', unit: 'celsius' } }],
  },
  {
    format: 'hermes',
    text: 'Let me check both.\n<tool_call>\n{"name": "get_weather", "arguments": {"location": "Oslo"}}\n</tool_call>\n<tool_call>\n{"name": "get_time", "arguments": {"zone": "Europe/Oslo"}}\n</tool_call>',
    content: 'Let me check both.\n',
    calls: [{ name: 'get_weather', arguments: { location: 'Oslo' } }, { name: 'get_time', arguments: { zone: 'Europe/Oslo' } }],
  },
  {
    format: 'hermes',
    text: '<tool_call>\n{"arguments": {"location": "Rome \\"centro\\" {x}"}, "name": "get_weather"}\n</tool_call>',
    content: '',
    calls: [{ name: 'get_weather', arguments: { location: 'Rome "centro" {x}' } }],
  },
  {
    format: 'llama3',
    text: '{"name": "get_weather", "parameters": {"location": "San Francisco, CA", "unit": "fahrenheit"}}',
    content: '',
    calls: [{ name: 'get_weather', arguments: { location: 'San Francisco, CA', unit: 'fahrenheit' } }],
  },
  {
    format: 'llama3',
    text: '<|python_tag|>{"name": "get_time", "parameters": {"zone": "UTC"}}; {"name": "get_weather", "parameters": {"location": "Lima"}}',
    content: '',
    calls: [{ name: 'get_time', arguments: { zone: 'UTC' } }, { name: 'get_weather', arguments: { location: 'Lima' } }],
  },
  {
    format: 'mistral',
    text: '[TOOL_CALLS][{"name": "get_weather", "arguments": {"location": "Paris"}}, {"name": "get_time", "arguments": {"zone": "CET"}}]',
    content: '',
    calls: [{ name: 'get_weather', arguments: { location: 'Paris' } }, { name: 'get_time', arguments: { zone: 'CET' } }],
  },
  {
    // [TOOL_CALLS] is a control token: decoded without special tokens, only the array is left.
    format: 'mistral',
    text: '[{"name": "get_weather", "arguments": {"location": "Berlin"}}]',
    content: '',
    calls: [{ name: 'get_weather', arguments: { location: 'Berlin' } }],
  },
  {
    // Mistral's tokenizer v11 and later (Mistral Small 3.2, Magistral, Devstral): one [TOOL_CALLS] per call.
    format: 'mistral-args',
    text: '[TOOL_CALLS]get_weather[ARGS]{"location": "Paris", "unit": "celsius"}',
    content: '',
    calls: [{ name: 'get_weather', arguments: { location: 'Paris', unit: 'celsius' } }],
  },
  {
    format: 'mistral-args',
    text: 'Let me check [both]. [TOOL_CALLS]get_weather[ARGS]{"location": "Rome \\"centro\\" {x}"}[TOOL_CALLS]get_time[ARGS]{"zone": "CET"}',
    content: 'Let me check [both]. ',
    calls: [{ name: 'get_weather', arguments: { location: 'Rome "centro" {x}' } }, { name: 'get_time', arguments: { zone: 'CET' } }],
  },
  {
    // With a call id between the name and the arguments.
    format: 'mistral-args',
    text: '[TOOL_CALLS]get_time[CALL_ID]a1B2c3D4e[ARGS]{"zone": "UTC"}',
    content: '',
    calls: [{ name: 'get_time', arguments: { zone: 'UTC' } }],
  },
  {
    // [TOOL_CALLS] and [ARGS] are control tokens: decoded without special tokens, a name before an object is left.
    format: 'mistral-args',
    text: 'get_weather{"location": "Berlin"}get_time{"zone": "CET"}',
    content: '',
    calls: [{ name: 'get_weather', arguments: { location: 'Berlin' } }, { name: 'get_time', arguments: { zone: 'CET' } }],
  },
  { format: 'mistral-args', text: 'Paris is mild [today], {"a": 1}.', content: 'Paris is mild [today], {"a": 1}.', calls: [] },
  { format: 'hermes', text: 'The weather in Paris is mild.', content: 'The weather in Paris is mild.', calls: [] },
  { format: 'llama3', text: 'I cannot call {tools} now.', content: 'I cannot call {tools} now.', calls: [] },
];

describe('tool-call formats', () => {
  it('are chosen by the chat template', () => {
    expect(toolCallFormat('{% if tools %}...<tool_call>\\n{{ tool_call | tojson }}</tool_call>{% endif %}')).toBe('hermes');
    expect(toolCallFormat('<|start_header_id|>ipython<|end_header_id|>')).toBe('llama3');
    expect(toolCallFormat('{{ "[TOOL_CALLS]" + tool_calls | tojson }}')).toBe('mistral');
    expect(toolCallFormat('{{- "[TOOL_CALLS]" + tool.function.name + "[ARGS]" + arguments }}')).toBe('mistral-args');
    expect(toolCallFormat(undefined)).toBe('hermes');
    expect(toolCallFormat('{% for message in messages %}{{ message.content }}{% endfor %}')).toBe('hermes');
  });

  it.each(RECORDED.map((r) => [r.format, r.text.slice(0, 50), r] as const))('%s: %s', (_f, _t, r) => {
    const parsed = parseToolOutput(r.format, r.text, true);
    expect(parsed.content).toBe(r.content);
    expect(parsed.calls.map((c) => ({ name: c.name, arguments: JSON.parse(c.arguments) as unknown }))).toEqual(r.calls);
  });

  it.each(RECORDED.map((r) => [r.format, r.text.slice(0, 50), r] as const))('streamed in pieces, %s: %s', (_f, _t, r) => {
    const whole = parseToolOutput(r.format, r.text, true);
    for (const size of [1, 2, 3, 7]) {
      let n = 0;
      const stream = new ToolCallStream(r.format, () => `call_${n++}`);
      let content = '';
      const calls: { id?: string; name: string; arguments: string }[] = [];
      const take = (d: ReturnType<ToolCallStream['push']>) => {
        content += d.content;
        for (const c of d.calls) {
          if (c.id) {
            expect(c.index).toBe(calls.length);
            expect(c.type).toBe('function');
            calls.push({ id: c.id, name: c.function.name ?? '', arguments: c.function.arguments });
          } else {
            expect(c.function.name).toBeUndefined();
            calls[c.index].arguments += c.function.arguments;
          }
        }
      };
      for (let i = 0; i < r.text.length; i += size) take(stream.push(r.text.slice(i, i + size)));
      take(stream.push('', true));
      expect(content, `pieces of ${size}`).toBe(whole.content);
      expect(calls.map(({ name, arguments: a }) => ({ name, arguments: a }))).toEqual(whole.calls.map(({ name, arguments: a }) => ({ name, arguments: a })));
      expect(calls.map((c) => c.id)).toEqual(whole.calls.map((_, i) => `call_${i}`));
    }
  });

  it('holds back what may start a call, and lets it go when it does not', () => {
    expect(parseToolOutput('hermes', 'Hello <tool_', false).content).toBe('Hello ');
    expect(parseToolOutput('hermes', 'Hello <tool_', true).content).toBe('Hello <tool_');
    expect(parseToolOutput('hermes', 'Hello <tool_box>', false).content).toBe('Hello <tool_box>');
    expect(parseToolOutput('mistral-args', 'Hello [TOOL_', false).content).toBe('Hello ');
    expect(parseToolOutput('mistral-args', 'Hello [TOOL_', true).content).toBe('Hello [TOOL_');
    expect(parseToolOutput('mistral-args', 'Hello [TOOLS]', false).content).toBe('Hello [TOOLS]');
    expect(parseToolOutput('mistral-args', 'get_weather', false).content).toBe(''); // may be a bare call's name
    expect(parseToolOutput('mistral-args', 'get weather', false).content).toBe('get weather');
    expect(parseToolOutput('mistral-args', '[TOOL_CALLS]get_weather[AR', false)).toEqual({ content: '', calls: [{ name: '', arguments: '', complete: false }] });
    expect(parseToolOutput('mistral-args', '[TOOL_CALLS]get_weather[ARGS]{"location": "Pa', false).calls)
      .toEqual([{ name: 'get_weather', arguments: '{"location": "Pa', complete: false }]);
    // Cut off (max_tokens): no call.
    expect(parseToolOutput('mistral-args', '[TOOL_CALLS]get_weather[ARGS]{"location": "Pa', true).calls).toEqual([]);
  });
});

describe('the call grammar', () => {
  it.each(['hermes', 'llama3', 'mistral', 'mistral-args'] as const)('%s: accepts calls of the tools (one, or several when parallel) and nothing else', async (format) => {
    const xg = await XGrammar.load();
    const accepts = async (spec: ReturnType<typeof toolGrammar>, text: string) => {
      const grammar = await xg.guard((lib) => lib.Grammar.fromStructuralTag(spec!.type === 'structural_tag' ? spec!.tag : ''));
      return xg.lib.Testings.isGrammarAcceptString(grammar, text);
    };
    const one = RECORDED.find((r) => r.format === format && r.calls.length === 1 && r.text.includes({ llama3: '"parameters"', 'mistral-args': '[ARGS]' }[format as string] ?? '"arguments"'))!;
    const text = format === 'mistral' ? `[TOOL_CALLS]${one.text.replace(/^\[TOOL_CALLS\]/, '')}` : one.text;
    const canonical = (r: Recorded) => (format === 'hermes' ? r.text : text);
    expect(await accepts(toolGrammar(format, [WEATHER, TIME], 'required', true), canonical(one))).toBe(true);
    expect(await accepts(toolGrammar(format, [WEATHER, TIME], { name: 'get_weather' }, false), canonical(one))).toBe(true);
    expect(await accepts(toolGrammar(format, [WEATHER, TIME], { name: 'get_time' }, false), canonical(one))).toBe(false);
    expect(await accepts(toolGrammar(format, [WEATHER, TIME], 'required', true), 'The weather is mild.')).toBe(false);
    expect(await accepts(toolGrammar(format, [WEATHER, TIME], 'auto', true), 'The weather is mild.')).toBe(true);
    expect(await accepts(toolGrammar(format, [WEATHER, TIME], 'auto', true), `Checking. ${canonical(one)}`)).toBe(true);
    expect(toolGrammar(format, [WEATHER], 'none', true)).toBeUndefined();
  });
});

describe('the mistral-args call grammar', () => {
  it('takes several calls, each opened by [TOOL_CALLS], only when parallel', async () => {
    const xg = await XGrammar.load();
    const accepts = async (choice: ToolChoice, parallel: boolean, text: string) => {
      const spec = toolGrammar('mistral-args', [WEATHER, TIME], choice, parallel)!;
      const grammar = await xg.guard((lib) => lib.Grammar.fromStructuralTag(spec.type === 'structural_tag' ? spec.tag : ''));
      return xg.lib.Testings.isGrammarAcceptString(grammar, text);
    };
    const two = '[TOOL_CALLS]get_weather[ARGS]{"location": "Oslo"}[TOOL_CALLS]get_time[ARGS]{"zone": "CET"}';
    expect(await accepts('required', true, two)).toBe(true);
    expect(await accepts('required', false, two)).toBe(false);
    expect(await accepts('auto', true, `Checking. ${two}`)).toBe(true);
    expect(await accepts('required', true, '[TOOL_CALLS]get_weather[ARGS]{"zone": "CET"}')).toBe(false); // not its schema
    expect(await accepts('required', true, 'get_weather[ARGS]{"location": "Oslo"}')).toBe(false);
  });
});

describe('tools in chat requests', () => {
  const bytes = new Uint8Array(readFileSync(modelPath('wg-tolstoy-q8_0.gguf')));
  const tokenizer = Tokenizer.fromMetadata(new Metadata(parseGgufHeader(bytes, 'tolstoy', bytes.byteLength).metadata, 'tolstoy'));
  // A Hermes-style template that renders tools, past calls (arguments as objects) and tool results.
  const HERMES = [
    '{%- if tools %}<|im_start|>system\n# Tools\n<tools>{% for tool in tools %}\n{{ tool | tojson }}{% endfor %}\n</tools><|im_end|>\n{% endif %}',
    '{%- for message in messages %}',
    '{%- if message.role == "assistant" and message.tool_calls %}<|im_start|>assistant\n{{ message.content }}',
    '{%- for tc in message.tool_calls %}<tool_call>\n{"name": "{{ tc.function.name }}", "arguments": {{ tc.function.arguments | tojson }}}\n</tool_call>{% endfor %}<|im_end|>\n',
    '{%- elif message.role == "tool" %}<|im_start|>user\n<tool_response>\n{{ message.content }}\n</tool_response><|im_end|>\n',
    '{%- else %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n{% endif %}{% endfor %}',
    '{%- if add_generation_prompt %}<|im_start|>assistant\n{% endif %}',
  ].join('');
  const ctx = (template: string | undefined) => ({
    model: { tokenizer, chatTemplate: template, config: { vocabSize: tokenizer.vocabSize } } as unknown as Model,
    modelId: 'm',
    contextLength: 100000,
  });
  const history = [
    { role: 'user', content: 'Weather in Paris?' },
    { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"location": "Paris"}' } }] },
    { role: 'tool', tool_call_id: 'call_1', content: '{"temp": 21}' },
  ];
  const tools = [{ type: 'function', function: WEATHER }];

  it('renders tools, past calls and tool results through the template', async () => {
    const parsed = await parseChatRequest({ messages: history, tools }, ctx(HERMES));
    const text = parsed.promptTexts[0];
    expect(text).toMatch(/<tools>\n?\{"type": ?"function", ?"function": ?\{"name": ?"get_weather"/);
    expect(text).toMatch(/<tool_call>\n\{"name": "get_weather", "arguments": \{"location": ?"Paris"\}\}\n<\/tool_call>/);
    expect(text).toContain('<tool_response>\n{"temp": 21}\n</tool_response>');
    expect(parsed.toolCalls).toEqual({ format: 'hermes' });
    expect(parsed.grammar?.param).toBe('tools'); // 'auto': the call grammar after its trigger
  });

  it('a template without tools gets past calls as text, and with "auto" the tools in a system message', async () => {
    const plain = ctx('{% for message in messages %}{{ message.content }}\n{% endfor %}');
    const auto = (await parseChatRequest({ messages: history, tools }, plain)).promptTexts[0];
    expect(auto).toContain('<tools>\n{"type":"function","function":{"name":"get_weather"');
    expect(auto).toContain('<tool_call>\n{"name": "get_weather", "arguments": {"location": "Paris"}}\n</tool_call>');
    // A forced call is written by the grammar: the prompt stays short (small contexts).
    const required = (await parseChatRequest({ messages: history, tools, tool_choice: 'required' }, plain)).promptTexts[0];
    expect(required).not.toContain('<tools>');
    expect(required).toContain('<tool_call>\n{"name": "get_weather", "arguments": {"location": "Paris"}}\n</tool_call>');
  });

  it('rejects bad tools and tool_choice naming the field', async () => {
    const error = async (body: object) => {
      const e = await parseChatRequest({ messages: [{ role: 'user', content: 'x' }], ...body }, ctx(HERMES)).then(() => null, (err: unknown) => err);
      expect(e).toBeInstanceOf(ApiError);
      return (e as ApiError).param;
    };
    expect(await error({ tools: [{ type: 'function', function: { name: 'bad name' } }] })).toBe('tools[0].function.name');
    expect(await error({ tools, tool_choice: { type: 'function', function: { name: 'nope' } } })).toBe('tool_choice');
    expect(await error({ tool_choice: 'required' })).toBe('tool_choice');
    expect(await error({ tools, tool_choice: 'sometimes' })).toBe('tool_choice');
    expect(await error({ tools, parallel_tool_calls: 'yes' })).toBe('parallel_tool_calls');
    expect((await parseChatRequest({ messages: [{ role: 'user', content: 'x' }], tools, tool_choice: 'none' }, ctx(HERMES))).toolCalls).toBeUndefined();
  });
});
