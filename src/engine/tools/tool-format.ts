// How a model writes a tool call, chosen by its chat template, and the grammar that holds it to a
// valid call of the given tools (an XGrammar structural tag: each call's begin text names the
// function, its arguments follow the function's parameter schema).
import type { GrammarSpec } from '../grammar/index.js';

/**
 * hermes: `<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>` (Hermes, Qwen 2/2.5/3,
 *         and ChatML models); also the format of templates that know no tools.
 * llama3: `{"name": ..., "parameters": {...}}` (Llama 3.1 / 3.2 / 3.3 JSON tool calling).
 * mistral: `[TOOL_CALLS][{"name": ..., "arguments": {...}}]` (Mistral v0.3 to Small 3, Nemo).
 * mistral-args: `[TOOL_CALLS]name[ARGS]{...}`, once per call (Mistral's tokenizer v11 and later:
 *         Mistral Small 3.2, Magistral, Devstral, Ministral 3).
 */
export type ToolCallFormat = 'hermes' | 'llama3' | 'mistral' | 'mistral-args';

export interface ToolDefinition {
  name: string;
  description?: string;
  /** JSON schema of the arguments object. */
  parameters: Record<string, unknown>;
}

export type ToolChoice = 'none' | 'auto' | 'required' | { name: string };

export function toolCallFormat(template: string | undefined): ToolCallFormat {
  if (!template) return 'hermes';
  if (template.includes('[TOOL_CALLS]')) return template.includes('[ARGS]') ? 'mistral-args' : 'mistral';
  if (template.includes('<tool_call>')) return 'hermes';
  if (template.includes('<|python_tag|>') || template.includes('<|start_header_id|>')) return 'llama3';
  return 'hermes';
}

interface FormatText {
  /** Text that starts the calls (XGrammar's trigger in 'auto'). */
  trigger: string;
  /** One call: begin(name), the arguments object, end. */
  begin(name: string): string;
  end: string;
  /** Between calls of one response, and around them all. */
  separator: string;
  open: string;
  close: string;
}

export const FORMATS: Readonly<Record<ToolCallFormat, FormatText>> = {
  hermes: { trigger: '<tool_call>', begin: (n) => `<tool_call>\n{"name": ${JSON.stringify(n)}, "arguments": `, end: '}\n</tool_call>', separator: '\n', open: '', close: '' },
  llama3: { trigger: '{"name": ', begin: (n) => `{"name": ${JSON.stringify(n)}, "parameters": `, end: '}', separator: '; ', open: '', close: '' },
  mistral: { trigger: '[TOOL_CALLS]', begin: (n) => `{"name": ${JSON.stringify(n)}, "arguments": `, end: '}', separator: ', ', open: '[TOOL_CALLS][', close: ']' },
  // Each call opens with [TOOL_CALLS]: the first as the opening, the others as the separator (XGrammar takes no empty separator).
  'mistral-args': { trigger: '[TOOL_CALLS]', begin: (n) => `${n}[ARGS]`, end: '', separator: '[TOOL_CALLS]', open: '[TOOL_CALLS]', close: '' },
};

/**
 * The grammar of the output for `choice`: 'required' allows only calls (one, or several when
 * parallel), a named function one call of it; 'auto' allows free text, and once the format's trigger appears, a
 * valid call. 'none': no grammar.
 */
export function toolGrammar(format: ToolCallFormat, tools: readonly ToolDefinition[], choice: ToolChoice, parallel: boolean): GrammarSpec | undefined {
  if (choice === 'none' || !tools.length) return undefined;
  const f = FORMATS[format];
  const allowed = typeof choice === 'object' ? tools.filter((t) => t.name === choice.name) : tools;
  // A named function is called once; otherwise one call or, when parallel, several.
  const single = typeof choice === 'object' || !parallel;
  const tag = (t: ToolDefinition, begin: string, end: string) => ({ type: 'tag', begin, content: { type: 'json_schema', json_schema: t.parameters }, end });
  // 'auto' lets the model write text until the trigger; each tag then holds a whole call (with the format's wrapping).
  const structure = choice === 'auto'
    ? { type: 'triggered_tags', triggers: [f.trigger], tags: allowed.map((t) => tag(t, f.open + f.begin(t.name), f.end + f.close)), at_least_one: false, stop_after_first: single }
    : sequence(f, { type: 'tags_with_separator', tags: allowed.map((t) => tag(t, f.begin(t.name), f.end)), separator: f.separator, at_least_one: true, stop_after_first: single });
  return { type: 'structural_tag', tag: JSON.stringify({ type: 'structural_tag', format: structure }) };
}

/** The calls wrapped in the format's open and close text (XGrammar takes them as a tag around the calls, not as a sequence). */
function sequence(f: FormatText, calls: object): object {
  if (!f.open && !f.close) return calls;
  // XGrammar rejects a tag with an empty end around separated tags: the opening text alone is a sequence.
  if (!f.close) return { type: 'sequence', elements: [{ type: 'const_string', value: f.open }, calls] };
  return { type: 'tag', begin: f.open, content: calls, end: f.close };
}

/**
 * For templates that do not render `tools`: a system message that lists them and says how to
 * call one (in the hermes format), as llama.cpp's generic tool prompt does.
 */
export function toolSystemPrompt(tools: readonly ToolDefinition[]): string {
  const list = tools.map((t) => JSON.stringify({ type: 'function', function: t })).join('\n');
  return 'You may call one or more functions to assist with the user query.\n\n' +
    `You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n${list}\n</tools>\n\n` +
    'For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n' +
    '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>';
}

/** A past call written as the model would have written it (for templates without tool support). */
export function callText(format: ToolCallFormat, name: string, args: string): string {
  const f = FORMATS[format];
  return `${f.open}${f.begin(name)}${args}${f.end}${f.close}`;
}
