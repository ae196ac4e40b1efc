// Reads tool calls out of a model's text, whole or as it streams. One scanner serves the three
// JSON formats: text before the format's trigger is content; after it come JSON objects
// {"name": ..., "arguments" | "parameters": {...}} between the format's wrappers
// (<tool_call> </tool_call>, [TOOL_CALLS] [ , ], ; and <|python_tag|>). Mistral's newer
// `[TOOL_CALLS]name[ARGS]{...}` has its own scanner (parseArgsCalls).
import type { ToolCallFormat } from './tool-format.js';

export interface ParsedCall {
  name: string;
  /** The arguments object's JSON text as the model wrote it (so far, while streaming). */
  arguments: string;
  complete: boolean;
}

export interface ParsedOutput {
  /** Text that is not a call (a partial trigger at the end is held back until it resolves). */
  content: string;
  calls: ParsedCall[];
}

/** Any non-empty proper start of `literal`, at the end of the text. */
function partialOf(literal: string): string {
  const starts = Array.from({ length: literal.length - 1 }, (_, i) => literal.slice(0, literal.length - 1 - i));
  return `(?:${starts.map((x) => x.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})$`;
}
/** The start of `{"name":` (any spacing), at the end of the text. */
const NAME_START = '\\{\\s*(?:"(?:n(?:a(?:m(?:e(?:"\\s*)?)?)?)?)?)?$';

const TRIGGERS: Readonly<Record<Exclude<ToolCallFormat, 'mistral-args'>, { find: RegExp; partial: RegExp }>> = {
  hermes: { find: /<tool_call>/, partial: new RegExp(partialOf('<tool_call>')) },
  llama3: { find: /<\|python_tag\|>|\{\s*"name"\s*:/, partial: new RegExp(`${partialOf('<|python_tag|>')}|${NAME_START}`) },
  // [TOOL_CALLS] is a control token, absent from text decoded without special tokens: a leading
  // array of named objects counts as well.
  mistral: { find: /\[TOOL_CALLS\]|\[\s*\{\s*"name"\s*:/, partial: new RegExp(`${partialOf('[TOOL_CALLS]')}|\\[\\s*$|\\[\\s*${NAME_START}`) },
};
const WRAPPERS = ['<tool_call>', '</tool_call>', '[TOOL_CALLS]', '<|python_tag|>', '[', ']', ',', ';'];
const CALL_HEAD = /^\{\s*"name"\s*:\s*("(?:[^"\\]|\\.)*")\s*,\s*"(?:arguments|parameters)"\s*:\s*/;

/** Content and calls of `text`; with `final` false, the last call may be unfinished. */
export function parseToolOutput(format: ToolCallFormat, text: string, final: boolean): ParsedOutput {
  if (format === 'mistral-args') return parseArgsCalls(text, final);
  const trigger = TRIGGERS[format];
  const found = trigger.find.exec(text);
  if (!found) return { content: final ? text : text.slice(0, trigger.partial.exec(text)?.index ?? text.length), calls: [] };
  const calls: ParsedCall[] = [];
  let pos = found.index;
  let rest = '';
  for (;;) {
    pos = skipWrappers(text, pos);
    if (pos >= text.length) break;
    const call = text[pos] === '{' ? readCall(text, pos) : null;
    if (!call) {
      rest = text.slice(pos); // not a call: text after the calls
      break;
    }
    if (!call.complete && final) break; // cut off: no call
    calls.push(call.call);
    if (!call.complete) break;
    pos = call.end;
  }
  return { content: text.slice(0, found.index) + (final ? rest : ''), calls };
}

function skipWrappers(text: string, pos: number): number {
  for (;;) {
    while (pos < text.length && /\s/.test(text[pos])) pos++;
    const w = WRAPPERS.find((x) => text.startsWith(x, pos));
    if (!w) return pos;
    pos += w.length;
  }
}

function readCall(text: string, start: number): { call: ParsedCall; complete: boolean; end: number } | null {
  const end = jsonEnd(text, start);
  const head = CALL_HEAD.exec(text.slice(start));
  if (head) {
    const name = JSON.parse(head[1]) as string;
    const argsStart = start + head[0].length;
    const argsEnd = jsonEnd(text, argsStart);
    const args = text.slice(argsStart, argsEnd === -1 ? text.length : argsEnd);
    if (end === -1) return { call: { name, arguments: args, complete: false }, complete: false, end: -1 };
    return { call: { name, arguments: args, complete: true }, complete: true, end };
  }
  if (end === -1) return { call: { name: '', arguments: '', complete: false }, complete: false, end: -1 };
  // Another key order: the whole object decides.
  try {
    const value = JSON.parse(text.slice(start, end)) as { name?: unknown; arguments?: unknown; parameters?: unknown };
    if (typeof value.name !== 'string') return null;
    const args = value.arguments ?? value.parameters ?? {};
    return { call: { name: value.name, arguments: typeof args === 'string' ? args : JSON.stringify(args), complete: true }, complete: true, end };
  } catch {
    return null;
  }
}

const ARGS_TRIGGER = '[TOOL_CALLS]';
const ARGS_PARTIAL = new RegExp(partialOf(ARGS_TRIGGER));
/** A call's head: its name, Mistral's optional [CALL_ID]id, and [ARGS]. */
const ARGS_HEAD = /^([A-Za-z0-9_.-]{1,64})(?:\[CALL_ID\][A-Za-z0-9_-]*)?\[ARGS\]/;
/**
 * Decoded without special tokens, [TOOL_CALLS] and [ARGS] (control tokens) are gone: an output
 * that opens with a name right before a JSON object is a call too.
 */
const BARE_HEAD = /^\s*([A-Za-z0-9_.-]{1,64})(?=\{)/;
/** What may still become a bare head: the start of the output, a name so far. */
const BARE_PARTIAL = /^\s*[A-Za-z0-9_.-]{0,64}$/;

/**
 * `[TOOL_CALLS]name[ARGS]{...}` once per call (Mistral's tokenizer v11 and later). Text before
 * the first [TOOL_CALLS] is content; with `final` false, the last call may be unfinished.
 */
function parseArgsCalls(text: string, final: boolean): ParsedOutput {
  let first = text.indexOf(ARGS_TRIGGER);
  const bare = first === -1 ? BARE_HEAD.exec(text) : null;
  if (first === -1 && !bare) {
    const held = final ? -1 : (BARE_PARTIAL.test(text) ? 0 : ARGS_PARTIAL.exec(text)?.index ?? -1);
    return { content: held === -1 ? text : text.slice(0, held), calls: [] };
  }
  if (bare) first = bare.index;
  const calls: ParsedCall[] = [];
  let pos = first;
  let rest = '';
  for (;;) {
    const atTrigger = text.startsWith(ARGS_TRIGGER, pos);
    const start = atTrigger ? pos + ARGS_TRIGGER.length : pos;
    const head = (atTrigger ? ARGS_HEAD : BARE_HEAD).exec(text.slice(start));
    if (!head) {
      const tail = text.slice(pos);
      // A head still arriving: no call yet (and, at the end, none at all).
      if (!final && atTrigger && mayBecomeHead(text.slice(start))) {
        calls.push({ name: '', arguments: '', complete: false });
        break;
      }
      rest = tail;
      break;
    }
    const argsStart = start + head[0].length;
    const argsEnd = jsonEnd(text, argsStart);
    if (argsEnd === -1) {
      if (!final) calls.push({ name: head[1], arguments: text.slice(argsStart), complete: false });
      break;
    }
    calls.push({ name: head[1], arguments: text.slice(argsStart, argsEnd), complete: true });
    pos = argsEnd;
    while (pos < text.length && /\s/.test(text[pos])) pos++;
    if (pos >= text.length) break;
    // Without special tokens, the next call is bare as well.
    if (!text.startsWith(ARGS_TRIGGER, pos) && !(bare && BARE_HEAD.test(text.slice(pos)))) {
      if (!final && ARGS_TRIGGER.startsWith(text.slice(pos))) break; // the next trigger may be arriving
      rest = text.slice(pos);
      break;
    }
  }
  return { content: text.slice(0, first) + (final ? rest : ''), calls };
}

/** `s` is a call head (name, [CALL_ID]id, [ARGS]) cut short. */
function mayBecomeHead(s: string): boolean {
  const name = /^[A-Za-z0-9_.-]{0,64}/.exec(s)?.[0] ?? '';
  let rest = s.slice(name.length);
  if (!rest || '[ARGS]'.startsWith(rest)) return true;
  if (!rest.startsWith('[CALL_ID]')) return '[CALL_ID]'.startsWith(rest);
  rest = rest.slice('[CALL_ID]'.length).replace(/^[A-Za-z0-9_-]*/, '');
  return '[ARGS]'.startsWith(rest);
}

/** Index just after the JSON value starting at `start` (an object, array, string or scalar), or -1 if it does not end in `text`. */
function jsonEnd(text: string, start: number): number {
  let depth = 0;
  let inString = false;
  for (let i = start; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') {
        inString = false;
        if (depth === 0) return i + 1;
      }
    } else if (depth === 0 && i > start && /[\s,}\]]/.test(c)) return i; // the end of a scalar
    else if (c === '"') inString = true;
    else if (c === '{' || c === '[') depth++;
    else if ((c === '}' || c === ']') && --depth === 0) return i + 1;
  }
  return -1;
}

/** One streamed tool-call delta, as OpenAI sends it. */
export interface ToolCallDelta {
  index: number;
  id?: string;
  type?: 'function';
  function: { name?: string; arguments: string };
}

/**
 * A choice's text as it streams: content deltas, then each call as OpenAI streams it (its index,
 * id, type and name first, then pieces of its arguments), all concatenating to the whole parse.
 */
export class ToolCallStream {
  private text = '';
  private sentContent = 0;
  private readonly sent: { id: string; args: number }[] = [];

  constructor(private readonly format: ToolCallFormat, private readonly newId: () => string) {}

  push(piece: string, final = false): { content: string; calls: ToolCallDelta[] } {
    this.text += piece;
    const parsed = parseToolOutput(this.format, this.text, final);
    const content = parsed.content.slice(this.sentContent);
    this.sentContent = Math.max(this.sentContent, parsed.content.length);
    const calls: ToolCallDelta[] = [];
    parsed.calls.forEach((call, index) => {
      if (!call.name) return;
      let sent = this.sent[index];
      if (!sent) {
        sent = this.sent[index] = { id: this.newId(), args: 0 };
        calls.push({ index, id: sent.id, type: 'function', function: { name: call.name, arguments: '' } });
      }
      if (call.arguments.length > sent.args) {
        calls.push({ index, function: { arguments: call.arguments.slice(sent.args) } });
        sent.args = call.arguments.length;
      }
    });
    return { content, calls };
  }

  /** Ids given to the calls so far, in order (the whole response's calls use the same). */
  get ids(): string[] {
    return this.sent.map((s) => s.id);
  }
}
