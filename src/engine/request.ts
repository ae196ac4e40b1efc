// Checks an OpenAI request field by field (it may come from JSON over HTTP, so nothing is
// trusted to match the types) and turns it into prompts and sampling parameters. Every problem
// is an ApiError naming the field.
import { renderChat, type Model } from '../model/index.js';
import type { SamplingParams } from './engine-core.js';
import { ApiError } from './errors.js';

export interface ParsedRequest {
  /** Token ids of each prompt. */
  prompts: number[][];
  /** Text of each prompt (for echo). */
  promptTexts: string[];
  /** Choices per prompt. */
  n: number;
  stream: boolean;
  includeUsage: boolean;
  /** 'chat': logprobs.content; 'legacy': also OpenAI's tokens / token_logprobs arrays. */
  logprobsFormat: 'chat' | 'legacy';
  /** Whether responses carry logprobs. */
  wantsLogprobs: boolean;
  /** The request field that holds the prompt ('messages' or 'prompt'), for errors about it. */
  promptParam: 'messages' | 'prompt';
  echo: boolean;
  /** Prefix-cache salt (cache_salt; '' when absent). */
  cacheSalt: string;
  /** Sampling parameters of choice `index` (0 .. n - 1) of a prompt of `promptLength` tokens. */
  params(index: number, promptLength: number): SamplingParams;
}

export interface RequestContext {
  model: Model;
  modelId: string;
  contextLength: number;
  /** Values for fields a request leaves out (web-llm's ChatOptions given to reload). */
  defaults?: Readonly<Record<string, unknown>>;
  /** Bounds on the work of one request. */
  limits?: RequestLimits;
}

export interface RequestLimits {
  /** Most prompts in one /v1/completions request (default 64). */
  maxPromptsPerRequest?: number;
  /** Most choices (prompts × n) in one request (default 64). */
  maxChoicesPerRequest?: number;
}

export const DEFAULT_REQUEST_LIMITS: Required<RequestLimits> = { maxPromptsPerRequest: 64, maxChoicesPerRequest: 64 };

type Body = Record<string, unknown>;

const MAX_N = 16;
const MAX_TOP_LOGPROBS = 20;

/** Checks the request, then tokenizes its prompt in steps that let other work run (see encodeAsync). */
export async function parseChatRequest(body: unknown, ctx: RequestContext): Promise<ParsedRequest> {
  const req = asBody(body, ctx.defaults);
  checkModel(req, ctx);
  const text = renderChatRequest(req, ctx);
  rejectUnsupported(req);
  checkChoices(1, int(req, 'n', 1, MAX_N) ?? 1, ctx);
  checkTextFits(text, ctx, 'messages');
  const ids = await ctx.model.tokenizer.encodeChatPromptAsync(text);
  const logprobs = bool(req, 'logprobs') ?? false;
  const top = int(req, 'top_logprobs', 0, MAX_TOP_LOGPROBS);
  if (top !== undefined && !logprobs) throw ApiError.invalid('top_logprobs', 'top_logprobs needs logprobs: true');
  // 0 (vLLM's prefill-only request): the prompt's KV is computed and nothing is generated.
  const maxTokens = int(req, 'max_completion_tokens', 0) ?? int(req, 'max_tokens', 0);
  return build(req, ctx, [ids], [text], { promptParam: 'messages', logprobs: logprobs ? top ?? 0 : undefined, format: 'chat', maxTokens, echo: false });
}

/**
 * The token ids of a chat request's prompt, or of a text (vLLM's /tokenize): what the model would
 * read, without running it. No messages count 0 tokens.
 */
export async function tokenizeRequest(body: unknown, ctx: RequestContext): Promise<number[]> {
  const req = asBody(body);
  checkModel(req, ctx);
  if (req.messages === undefined && typeof req.prompt === 'string') {
    const addSpecial = bool(req, 'add_special_tokens') ?? true;
    return ctx.model.tokenizer.encode(req.prompt, { addBos: addSpecial });
  }
  if (Array.isArray(req.messages) && req.messages.length === 0) return [];
  return ctx.model.tokenizer.encodeChatPromptAsync(renderChatRequest(req, ctx));
}

/**
 * The chat prompt as text. add_generation_prompt (default true) ends it with the header of an
 * assistant turn; continue_final_message (vLLM, Hugging Face) instead ends it inside the last
 * message, an assistant's, for the model to continue that text.
 */
function renderChatRequest(req: Body, ctx: RequestContext): string {
  const messages = parseMessages(req.messages);
  const tools = req.tools === undefined || req.tools === null ? undefined : arrayOf(req.tools, 'tools');
  const continueFinal = bool(req, 'continue_final_message') ?? false;
  const addGenerationPrompt = bool(req, 'add_generation_prompt') ?? !continueFinal;
  if (continueFinal && addGenerationPrompt) {
    throw ApiError.invalid('continue_final_message', 'continue_final_message and add_generation_prompt cannot both be true');
  }
  const final = messages[messages.length - 1];
  if (continueFinal && final.role !== 'assistant') {
    throw ApiError.invalid('continue_final_message', `continue_final_message needs an assistant message last, not ${final.role}`);
  }
  const tok = ctx.model.tokenizer;
  const render = (list: typeof messages, generationPrompt: boolean) => {
    try {
      return renderChat(ctx.model.chatTemplate, list, { addGenerationPrompt: generationPrompt, bosToken: tok.bosText, eosToken: tok.eosText, tools, fallback: 'chatml' });
    } catch (e) {
      // A value nested deeper than the template engine recurses is the request's fault, not a crash.
      const message = e instanceof RangeError ? 'the messages or tools are nested too deeply to render' : (e as Error).message;
      throw ApiError.invalid('messages', message);
    }
  };
  if (!continueFinal) return render(messages, addGenerationPrompt);
  // An empty final message continues as a new assistant turn does.
  if (final.content.trim() === '') return render(messages.slice(0, -1), true) + final.content;
  return cutAfterFinalMessage(render(messages, false), final.content);
}

/** The rendered chat up to the end of its final message's text (as transformers' continue_final_message cuts it). */
function cutAfterFinalMessage(rendered: string, content: string): string {
  const at = rendered.lastIndexOf(content.trim());
  if (at < 0) throw ApiError.invalid('continue_final_message', 'the chat template changes the final message, so it cannot be continued');
  const kept = rendered.slice(at, at + content.trimStart().length) === content.trimStart() ? content.trimStart() : content.trim();
  return rendered.slice(0, at + kept.length);
}

/** Checks the request, then tokenizes its prompts in steps that let other work run (see encodeAsync). */
export async function parseCompletionRequest(body: unknown, ctx: RequestContext): Promise<ParsedRequest> {
  const req = asBody(body, ctx.defaults);
  checkModel(req, ctx);
  rejectUnsupported(req);
  if (req.suffix !== undefined && req.suffix !== null && req.suffix !== '') throw ApiError.invalid('suffix', 'suffix (fill in the middle) is not supported');
  const n = int(req, 'n', 1, MAX_N) ?? 1;
  const bestOf = int(req, 'best_of', 1, MAX_N);
  if (bestOf !== undefined && bestOf !== n) throw ApiError.invalid('best_of', 'best_of other than n is not supported');
  const { ids, texts } = await parsePrompts(req.prompt, ctx, n);
  let logprobs: number | undefined;
  let format: 'chat' | 'legacy' = 'chat';
  if (typeof req.logprobs === 'number') {
    logprobs = int(req, 'logprobs', 0, 5);
    format = 'legacy';
  } else if (bool(req, 'logprobs')) {
    logprobs = int(req, 'top_logprobs', 0, MAX_TOP_LOGPROBS) ?? 0;
  }
  const maxTokens = int(req, 'max_tokens', 1) ?? 16;
  return build(req, ctx, ids, texts, { promptParam: 'prompt', logprobs, format, maxTokens, echo: bool(req, 'echo') ?? false });
}

interface BuildOptions {
  promptParam: 'messages' | 'prompt';
  logprobs: number | undefined;
  format: 'chat' | 'legacy';
  maxTokens: number | undefined;
  echo: boolean;
}

function build(req: Body, ctx: RequestContext, prompts: number[][], texts: string[], o: BuildOptions): ParsedRequest {
  for (const ids of prompts) checkPromptLength(ids.length, ctx.contextLength, o.maxTokens, o.promptParam);
  const n = int(req, 'n', 1, MAX_N) ?? 1;
  const stream = bool(req, 'stream') ?? false;
  const streamOptions = req.stream_options === undefined || req.stream_options === null ? {} : asObject(req.stream_options, 'stream_options');
  if (streamOptions.include_usage !== undefined && typeof streamOptions.include_usage !== 'boolean') {
    throw ApiError.invalid('stream_options.include_usage', 'stream_options.include_usage must be a boolean');
  }
  if (!stream && req.stream_options !== undefined && req.stream_options !== null) {
    throw ApiError.invalid('stream_options', 'stream_options is only allowed with stream: true');
  }
  const temperature = num(req, 'temperature', 0, 2) ?? 1;
  const seed = int(req, 'seed', -(2 ** 63), 2 ** 64) ?? Math.floor(Math.random() * 2 ** 32);
  const stopIds = parseStopIds(req, ctx);
  const base: Omit<SamplingParams, 'seed' | 'maxTokens'> = {
    temperature,
    topK: Math.max(0, int(req, 'top_k', -1, ctx.model.config.vocabSize) ?? 0),
    topP: num(req, 'top_p', 0, 1, { exclusiveMin: true }) ?? 1,
    minP: num(req, 'min_p', 0, 1) ?? 0,
    frequencyPenalty: num(req, 'frequency_penalty', -2, 2) ?? 0,
    presencePenalty: num(req, 'presence_penalty', -2, 2) ?? 0,
    repetitionPenalty: num(req, 'repetition_penalty', 0, Infinity, { exclusiveMin: true }) ?? 1,
    logitBias: parseLogitBias(req.logit_bias, ctx.model.config.vocabSize),
    stopIds,
    stopStrings: parseStop(req.stop),
    logprobs: o.logprobs,
  };
  return {
    prompts,
    promptTexts: texts,
    n,
    stream,
    includeUsage: stream && streamOptions.include_usage === true,
    logprobsFormat: o.format,
    wantsLogprobs: o.logprobs !== undefined,
    promptParam: o.promptParam,
    echo: o.echo,
    cacheSalt: parseCacheSalt(req.cache_salt),
    params: (index, promptLength) => ({
      ...base,
      seed: mixSeed(seed, index),
      maxTokens: Math.min(o.maxTokens ?? Infinity, ctx.contextLength - promptLength),
      prefillOnly: o.maxTokens === 0,
    }),
  };
}

function checkPromptLength(tokens: number, contextLength: number, maxTokens: number | undefined, param: string): void {
  if (tokens === 0) throw ApiError.invalid(param, 'the prompt is empty');
  if (tokens >= contextLength) {
    const asked = maxTokens === undefined ? '' : ` and ${maxTokens} to generate`;
    throw ApiError.invalid(param, `This model's maximum context length is ${contextLength} tokens. However, the prompt has ${tokens} tokens${asked}: shorten the prompt to at most ${contextLength - 1} tokens.`, 'context_length_exceeded');
  }
}

function checkModel(req: Body, ctx: RequestContext): void {
  if (req.model === undefined || req.model === null) return;
  if (typeof req.model !== 'string') throw ApiError.invalid('model', 'model must be a string');
  if (req.model !== ctx.modelId) throw ApiError.modelNotFound(req.model, ctx.modelId);
}

function rejectUnsupported(req: Body): void {
  const format = req.response_format;
  if (format !== undefined && format !== null) {
    const type = typeof format === 'object' ? (format as Body).type : format;
    if (type !== 'text') throw ApiError.invalid('response_format', `response_format ${describe(type)} is not supported (only "text")`);
  }
  if (req.tool_choice === 'required' || (typeof req.tool_choice === 'object' && req.tool_choice !== null)) {
    throw ApiError.invalid('tool_choice', 'forcing a tool call (tool_choice "required" or a named function) is not supported');
  }
}

const ROLES = new Set(['system', 'developer', 'user', 'assistant', 'tool']);

function parseMessages(value: unknown): { role: string; content: string; [k: string]: unknown }[] {
  const messages = arrayOf(value, 'messages');
  if (!messages.length) throw ApiError.invalid('messages', 'messages must have at least one message');
  return messages.map((m, i) => {
    const where = `messages[${i}]`;
    const msg = asObject(m, where);
    if (typeof msg.role !== 'string' || !ROLES.has(msg.role)) {
      throw ApiError.invalid(`${where}.role`, `${where}.role must be one of ${[...ROLES].join(', ')}, got ${describe(msg.role)}`);
    }
    const content = messageText(msg.content, `${where}.content`, msg.role === 'assistant');
    return { ...msg, role: msg.role, content };
  });
}

/** String content, or the text parts of an array of content parts joined. */
function messageText(content: unknown, where: string, optional: boolean): string {
  if (typeof content === 'string') return content;
  if ((content === undefined || content === null) && optional) return '';
  if (!Array.isArray(content)) throw ApiError.invalid(where, `${where} must be a string or an array of text parts`);
  return content.map((part, i) => {
    const p = asObject(part, `${where}[${i}]`);
    if (p.type !== 'text') throw ApiError.invalid(`${where}[${i}].type`, `${where}[${i}] is a ${describe(p.type)} part; only text parts are supported`);
    if (typeof p.text !== 'string') throw ApiError.invalid(`${where}[${i}].text`, `${where}[${i}].text must be a string`);
    return p.text;
  }).join('');
}

/**
 * Refuses a text whose length alone shows it cannot fit the context, before tokenizing it (each
 * token covers at most the longest piece of the vocabulary).
 */
function checkTextFits(text: string, ctx: RequestContext, param: string): void {
  const atLeast = ctx.model.tokenizer.minTokens(text);
  if (atLeast >= ctx.contextLength) {
    throw ApiError.invalid(param, `This model's maximum context length is ${ctx.contextLength} tokens. However, the prompt of ${text.length} characters has at least ${atLeast} tokens: shorten the prompt to at most ${ctx.contextLength - 1} tokens.`, 'context_length_exceeded');
  }
}

/** Refuses a request for more choices (prompts × n) than one request may have. */
function checkChoices(prompts: number, n: number, ctx: RequestContext): void {
  const limits = {
    maxPromptsPerRequest: ctx.limits?.maxPromptsPerRequest ?? DEFAULT_REQUEST_LIMITS.maxPromptsPerRequest,
    maxChoicesPerRequest: ctx.limits?.maxChoicesPerRequest ?? DEFAULT_REQUEST_LIMITS.maxChoicesPerRequest,
  };
  if (prompts > limits.maxPromptsPerRequest) {
    throw ApiError.invalid('prompt', `prompt has ${prompts} prompts; at most ${limits.maxPromptsPerRequest} are allowed in one request`, 'too_many_prompts');
  }
  if (prompts * n > limits.maxChoicesPerRequest) {
    throw ApiError.invalid('n', `${prompts} prompt${prompts === 1 ? '' : 's'} with n = ${n} ask for ${prompts * n} choices; at most ${limits.maxChoicesPerRequest} are allowed in one request`, 'too_many_choices');
  }
}

async function parsePrompts(value: unknown, ctx: RequestContext, n: number): Promise<{ ids: number[][]; texts: string[] }> {
  const model = ctx.model;
  const tok = model.tokenizer;
  const isIds = (v: unknown): v is number[] => Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'number');
  const checkIds = (ids: number[], where: string) => {
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= model.config.vocabSize) {
        throw ApiError.invalid(where, `${where} has token id ${id}, outside the vocabulary of ${model.config.vocabSize}`);
      }
    }
    return ids;
  };
  const encode = (text: string, where: string) => {
    checkTextFits(text, ctx, where);
    return tok.encodeAsync(text);
  };
  if (typeof value === 'string') {
    checkChoices(1, n, ctx);
    return { ids: [await encode(value, 'prompt')], texts: [value] };
  }
  if (isIds(value)) {
    checkChoices(1, n, ctx);
    return { ids: [checkIds(value, 'prompt')], texts: [tok.decode(value)] };
  }
  if (Array.isArray(value) && value.length > 0) {
    checkChoices(value.length, n, ctx);
    value.forEach((p, i) => {
      if (typeof p === 'string') checkTextFits(p, ctx, `prompt[${i}]`);
      else if (!isIds(p)) throw ApiError.invalid(`prompt[${i}]`, `prompt[${i}] must be a string or an array of token ids`);
    });
    const ids: number[][] = [];
    for (const [i, p] of value.entries()) ids.push(typeof p === 'string' ? await encode(p, `prompt[${i}]`) : checkIds(p as number[], `prompt[${i}]`));
    return { ids, texts: value.map((p, i) => (typeof p === 'string' ? p : tok.decode(ids[i]))) };
  }
  throw ApiError.invalid('prompt', 'prompt must be a string, an array of strings, or token ids');
}

const MAX_CACHE_SALT = 1024;

/** vLLM's rule: absent, or a non-empty string. */
function parseCacheSalt(value: unknown): string {
  if (value === undefined || value === null) return '';
  if (typeof value !== 'string' || value === '') throw ApiError.invalid('cache_salt', 'cache_salt must be a non-empty string if provided');
  if (value.length > MAX_CACHE_SALT) throw ApiError.invalid('cache_salt', `cache_salt may have at most ${MAX_CACHE_SALT} characters, got ${value.length}`);
  return value;
}

function parseStop(value: unknown): string[] {
  if (value === undefined || value === null) return [];
  const stops = typeof value === 'string' ? [value] : arrayOf(value, 'stop');
  if (stops.length > 4) throw ApiError.invalid('stop', 'stop may have at most 4 sequences');
  return stops.map((s, i) => {
    if (typeof s !== 'string' || s === '') throw ApiError.invalid(`stop[${i}]`, 'stop sequences must be non-empty strings');
    return s;
  });
}

function parseStopIds(req: Body, ctx: RequestContext): number[] {
  const ignoreEos = bool(req, 'ignore_eos') ?? false;
  const ids = ignoreEos ? [] : [...ctx.model.tokenizer.eotIds];
  if (req.stop_token_ids === undefined || req.stop_token_ids === null) return ids;
  arrayOf(req.stop_token_ids, 'stop_token_ids').forEach((id, i) => {
    if (!Number.isInteger(id) || (id as number) < 0 || (id as number) >= ctx.model.config.vocabSize) {
      throw ApiError.invalid(`stop_token_ids[${i}]`, `stop_token_ids[${i}] must be a token id below ${ctx.model.config.vocabSize}`);
    }
    ids.push(id as number);
  });
  return ids;
}

function parseLogitBias(value: unknown, vocab: number): Map<number, number> {
  const bias = new Map<number, number>();
  if (value === undefined || value === null) return bias;
  for (const [key, v] of Object.entries(asObject(value, 'logit_bias'))) {
    const id = Number(key);
    if (!/^\d+$/.test(key) || id >= vocab) throw ApiError.invalid('logit_bias', `logit_bias key "${key}" is not a token id below ${vocab}`);
    if (typeof v !== 'number' || !Number.isFinite(v) || v < -100 || v > 100) {
      throw ApiError.invalid('logit_bias', `logit_bias["${key}"] must be a number from -100 to 100`);
    }
    bias.set(id, v);
  }
  return bias;
}

/** Choice i of a request with seed s draws with its own seed, the same on every run. */
function mixSeed(seed: number, index: number): number {
  const s = (Math.trunc(seed) % 2 ** 32 + 2 ** 32) % 2 ** 32;
  return index === 0 ? s : (Math.imul(s ^ (index * 0x9e3779b9), 0x85ebca6b) ^ index) >>> 0;
}

function asBody(body: unknown, defaults: Readonly<Record<string, unknown>> = {}): Body {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw ApiError.invalid(null, 'the request body must be a JSON object');
  const req = { ...(body as Body) };
  for (const [key, value] of Object.entries(defaults)) if (req[key] === undefined || req[key] === null) req[key] = value;
  return req;
}

function asObject(value: unknown, name: string): Body {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw ApiError.invalid(name, `${name} must be an object`);
  return value as Body;
}

function arrayOf(value: unknown, name: string): unknown[] {
  if (!Array.isArray(value)) throw ApiError.invalid(name, `${name} must be an array`);
  return value;
}

function bool(req: Body, name: string): boolean | undefined {
  const v = req[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw ApiError.invalid(name, `${name} must be a boolean, got ${describe(v)}`);
  return v;
}

function num(req: Body, name: string, min: number, max: number, o: { exclusiveMin?: boolean } = {}): number | undefined {
  const v = req[name];
  if (v === undefined || v === null) return undefined;
  // Compared only once it is a number: comparing an array stringifies it, recursively.
  const low = typeof v === 'number' && (o.exclusiveMin ? v <= min : v < min);
  if (typeof v !== 'number' || !Number.isFinite(v) || low || v > max) {
    const range = max === Infinity ? `${o.exclusiveMin ? 'above' : 'at least'} ${min}` : `${o.exclusiveMin ? 'above' : 'from'} ${min} ${o.exclusiveMin ? 'and at most' : 'to'} ${max}`;
    throw ApiError.invalid(name, `${name} must be a number ${range}, got ${describe(v)}`);
  }
  return v;
}

function int(req: Body, name: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const v = req[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    const range = max >= Number.MAX_SAFE_INTEGER ? `at least ${min}` : `from ${min} to ${max}`;
    throw ApiError.invalid(name, `${name} must be an integer ${range}, got ${describe(v)}`);
  }
  return v;
}

/** A rejected value for an error message: short, whatever its size or depth. */
function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}...` : v);
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (v === null) return 'null';
  if (typeof v === 'object') return 'an object';
  return String(v);
}
