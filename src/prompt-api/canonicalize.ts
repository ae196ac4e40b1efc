// Page input to checked values, as the spec's IDL conversion and its "validate and canonicalize"
// algorithms do, with the exception each misuse gets: TypeError for a value of the wrong kind,
// SyntaxError for a misplaced prefix, NotSupportedError for content this model cannot read,
// RangeError for a malformed language tag or a sampling value out of range.
import { domError, typeError } from './errors.js';
import type { CanonicalMessage, LanguageModelExpected, LanguageModelMessageRole, LanguageModelMessageType, LanguageModelSamplingMode, LanguageModelTool } from './types.js';

const ROLES: ReadonlySet<string> = new Set<LanguageModelMessageRole>(['system', 'user', 'assistant']);
const TYPES: ReadonlySet<string> = new Set<LanguageModelMessageType>(['text', 'image', 'audio', 'tool-call', 'tool-response']);
export const SAMPLING_MODES: readonly LanguageModelSamplingMode[] = ['most-predictable', 'predictable', 'balanced', 'creative', 'most-creative'];

type Dict = Record<string, unknown>;

/** A dictionary argument: undefined or null is {}, anything but an object is a TypeError. */
export function asDictionary(value: unknown, what: string): Dict {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' && typeof value !== 'function') throw typeError(`${what} must be an object`);
  return value as Dict;
}

function isIterable(value: unknown): value is Iterable<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { [Symbol.iterator]?: unknown })[Symbol.iterator] === 'function';
}

/**
 * LanguageModelPrompt: (sequence<LanguageModelMessage> or DOMString). An iterable object is the
 * sequence; any other value becomes a string, as WebIDL converts it (undefined is "undefined").
 */
export function canonicalizePrompt(input: unknown, hasAppendedInput: boolean): CanonicalMessage[] {
  if (!isIterable(input) || typeof input === 'string') return [{ role: 'user', content: String(input), prefix: false }];
  const list = [...input];
  if (!list.length) return [{ role: 'user', content: '', prefix: false }];
  const messages: CanonicalMessage[] = [];
  let appended = hasAppendedInput;
  list.forEach((raw, i) => {
    const m = message(raw, i);
    if (m.prefix) {
      if (m.role !== 'assistant') throw domError('SyntaxError', `message ${i} has prefix: true, which only an assistant message may have`);
      if (i !== list.length - 1) throw domError('SyntaxError', `message ${i} has prefix: true but is not the last message`);
    }
    if (m.role === 'system' && appended) {
      throw typeError(`message ${i} is a system message: a system message must come first, in the first input of a session`);
    }
    messages.push(m);
    appended = true;
  });
  return messages;
}

function message(raw: unknown, index: number): CanonicalMessage {
  const where = `message ${index}`;
  if (typeof raw !== 'object' || raw === null) throw typeError(`${where} must be an object with role and content`);
  const m = raw as Dict;
  if (m.role === undefined) throw typeError(`${where} has no role`);
  const role = String(m.role);
  if (!ROLES.has(role)) throw typeError(`${where}: role "${role}" is not one of ${[...ROLES].join(', ')}`);
  if (m.content === undefined) throw typeError(`${where} has no content`);
  const prefix = m.prefix === undefined ? false : Boolean(m.prefix);
  const content = isIterable(m.content) && typeof m.content !== 'string' ? contentText([...m.content], role, where) : String(m.content);
  return { role: role as LanguageModelMessageRole, content, prefix };
}

/** Text parts joined with nothing between them (the spec collapses contiguous text). */
function contentText(parts: unknown[], role: string, where: string): string {
  let text = '';
  parts.forEach((raw, j) => {
    const at = `${where}, content ${j}`;
    if (typeof raw !== 'object' || raw === null) throw typeError(`${at} must be an object with type and value`);
    const part = raw as Dict;
    if (part.type === undefined) throw typeError(`${at} has no type`);
    const type = String(part.type);
    if (!TYPES.has(type)) throw typeError(`${at}: type "${type}" is not one of ${[...TYPES].join(', ')}`);
    if (!('value' in part) || part.value === undefined) throw typeError(`${at} has no value`);
    if (role === 'assistant' && type !== 'text') throw domError('NotSupportedError', `${at}: an assistant message can only hold text, not ${type}`);
    if (type === 'text') {
      if (typeof part.value !== 'string') throw typeError(`${at}: a text part's value must be a string`);
      text += part.value;
      return;
    }
    // Sessions only ever expect text (create() refuses other expectedInputs), so the spec's
    // "expectedTypes does not contain type" step applies to every other type.
    throw domError('NotSupportedError', `${at}: ${type} input is not supported: this model reads text only`);
  });
  return text;
}

/** LanguageModelExpected entries: type checked, languages canonicalized (RangeError if malformed). */
export function canonicalizeExpected(value: unknown, what: string): LanguageModelExpected[] | undefined {
  if (value === undefined) return undefined;
  if (!isIterable(value) || typeof value === 'string') throw typeError(`${what} must be a sequence`);
  return [...value].map((raw, i) => {
    if (typeof raw !== 'object' || raw === null) throw typeError(`${what}[${i}] must be an object`);
    const e = raw as Dict;
    if (e.type === undefined) throw typeError(`${what}[${i}] has no type`);
    const type = String(e.type);
    if (!TYPES.has(type)) throw typeError(`${what}[${i}]: type "${type}" is not one of ${[...TYPES].join(', ')}`);
    if (e.languages === undefined) return { type: type as LanguageModelMessageType };
    if (!isIterable(e.languages) || typeof e.languages === 'string') throw typeError(`${what}[${i}].languages must be a sequence of strings`);
    const tags = [...e.languages].map(String);
    // Throws RangeError for a malformed tag; also deduplicates.
    return { type: type as LanguageModelMessageType, languages: Intl.getCanonicalLocales(tags) };
  });
}

export interface CheckedCoreOptions {
  samplingMode?: LanguageModelSamplingMode;
  topK?: number;
  temperature?: number;
  expectedInputs?: LanguageModelExpected[];
  expectedOutputs?: LanguageModelExpected[];
  tools?: LanguageModelTool[];
}

/** The sampling bounds params() reports. */
export interface SamplingLimits {
  defaultTopK: number;
  maxTopK: number;
  defaultTemperature: number;
  maxTemperature: number;
}

/** `legacy`: topK / temperature are checked and kept (extension contexts); else they are ignored, as in web pages. */
export function canonicalizeCoreOptions(options: Dict, limits: SamplingLimits, legacy: boolean): CheckedCoreOptions {
  const out: CheckedCoreOptions = {};
  if (options.samplingMode !== undefined) {
    const mode = String(options.samplingMode);
    if (!(SAMPLING_MODES as readonly string[]).includes(mode)) throw typeError(`samplingMode "${mode}" is not one of ${SAMPLING_MODES.join(', ')}`);
    out.samplingMode = mode as LanguageModelSamplingMode;
  }
  if (legacy && (options.topK !== undefined || options.temperature !== undefined)) {
    if (out.samplingMode) throw typeError('samplingMode cannot be given with topK or temperature');
    if (options.topK !== undefined) {
      const k = Number(options.topK);
      if (Number.isNaN(k) || k < 1) throw new RangeError(`topK must be at least 1, got ${String(options.topK)}`);
      out.topK = Math.min(Math.floor(k), limits.maxTopK);
    }
    if (options.temperature !== undefined) {
      const t = Number(options.temperature);
      if (Number.isNaN(t) || t < 0) throw new RangeError(`temperature must be at least 0, got ${String(options.temperature)}`);
      out.temperature = Math.min(t, limits.maxTemperature);
    }
  }
  out.expectedInputs = canonicalizeExpected(options.expectedInputs, 'expectedInputs');
  out.expectedOutputs = canonicalizeExpected(options.expectedOutputs, 'expectedOutputs');
  out.tools = canonicalizeTools(options.tools);
  return out;
}

function canonicalizeTools(value: unknown): LanguageModelTool[] | undefined {
  if (value === undefined) return undefined;
  if (!isIterable(value) || typeof value === 'string') throw typeError('tools must be a sequence');
  return [...value].map((raw, i) => {
    if (typeof raw !== 'object' || raw === null) throw typeError(`tools[${i}] must be an object`);
    const t = raw as Dict;
    for (const key of ['name', 'description', 'inputSchema', 'execute']) if (t[key] === undefined) throw typeError(`tools[${i}] has no ${key}`);
    if (typeof t.inputSchema !== 'object' || t.inputSchema === null) throw typeError(`tools[${i}].inputSchema must be an object`);
    if (typeof t.execute !== 'function') throw typeError(`tools[${i}].execute must be a function`);
    return { name: String(t.name), description: String(t.description), inputSchema: t.inputSchema, execute: t.execute as LanguageModelTool['execute'] };
  });
}

/** A responseConstraint: a RegExp or a JSON schema object; anything else is a TypeError. */
export type ResponseConstraint = { kind: 'regexp'; regexp: RegExp } | { kind: 'json-schema'; schema: Record<string, unknown> };

export function canonicalizeConstraint(value: unknown): ResponseConstraint | null {
  if (value === undefined || value === null) return null;
  if (value instanceof RegExp) return { kind: 'regexp', regexp: value };
  if (typeof value !== 'object' || Array.isArray(value)) throw typeError('responseConstraint must be a JSON schema object or a RegExp');
  try {
    JSON.stringify(value);
  } catch {
    throw typeError('responseConstraint is not a JSON schema: it cannot be serialized as JSON');
  }
  return { kind: 'json-schema', schema: value as Record<string, unknown> };
}
