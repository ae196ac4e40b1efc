// Checks an OpenAI request field by field (it may come from JSON over HTTP, so nothing is
// trusted to match the types) and turns it into prompts and sampling parameters. Every problem
// is an ApiError naming the field.
import { renderChat, type Model } from '../model/index.js';
import type { SamplingParams } from './engine-core.js';
import { ApiError } from './errors.js';
import type { GrammarSpec } from './grammar/index.js';
import { callText, toolCallFormat, toolGrammar, toolSystemPrompt, type ToolCallFormat, type ToolChoice, type ToolDefinition } from './tools/index.js';

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
  /** session_id: the session the request continues (one prompt, n 1), or null. */
  sessionId: string | null;
  /** The grammar every choice must follow, and the request field it came from (for errors). */
  grammar?: { spec: GrammarSpec; param: string };
  /** Set when the output may hold tool calls (tools given, tool_choice not 'none'): how to read them. */
  toolCalls?: { format: ToolCallFormat };
  /** Who sent it: metadata.workflow_id / metadata.agent_id, and priority (lower runs earlier). */
  identity: RequestIdentity;
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

export interface RequestIdentity {
  /** metadata.workflow_id; null: the request is its own one-call workflow. */
  workflowId: string | null;
  /** metadata.agent_id; null when absent. */
  agentId: string | null;
  /** Lower runs earlier (vLLM's convention); default 0. */
  priority: number;
}

const MAX_N = 16;
const MAX_TOP_LOGPROBS = 20;

/** Checks the request, then tokenizes its prompt in steps that let other work run (see encodeAsync). */
export async function parseChatRequest(body: unknown, ctx: RequestContext): Promise<ParsedRequest> {
  const req = asBody(body, ctx.defaults);
  checkModel(req, ctx);
  const text = renderChatRequest(req, ctx);
  const tools = parseTools(req);
  checkChoices(1, int(req, 'n', 1, MAX_N) ?? 1, ctx);
  checkTextFits(text, ctx, 'messages');
  const ids = await ctx.model.tokenizer.encodeChatPromptAsync(text);
  const logprobs = bool(req, 'logprobs') ?? false;
  const top = int(req, 'top_logprobs', 0, MAX_TOP_LOGPROBS);
  if (top !== undefined && !logprobs) throw ApiError.invalid('top_logprobs', 'top_logprobs needs logprobs: true');
  // 0 (vLLM's prefill-only request): the prompt's KV is computed and nothing is generated.
  const maxTokens = int(req, 'max_completion_tokens', 0) ?? int(req, 'max_tokens', 0);
  const parsed = build(req, ctx, [ids], [text], { promptParam: 'messages', logprobs: logprobs ? top ?? 0 : undefined, format: 'chat', maxTokens, echo: false });
  if (!tools || tools.choice === 'none') return parsed;
  // A forced call is held to the tools' schemas; with 'auto', a response_format wins over the call grammar.
  const format = toolCallFormat(ctx.model.chatTemplate);
  const forced = tools.choice !== 'auto';
  const spec = toolGrammar(format, tools.definitions, tools.choice, tools.parallel);
  const grammar = spec && (forced || !parsed.grammar) ? { spec, param: 'tools' } : parsed.grammar;
  return { ...parsed, grammar, toolCalls: { format } };
}

interface ParsedTools {
  /** As given, for the chat template. */
  raw: unknown[];
  definitions: ToolDefinition[];
  choice: ToolChoice;
  parallel: boolean;
}

/** tools, tool_choice and parallel_tool_calls; undefined when there are no tools. */
function parseTools(req: Body): ParsedTools | undefined {
  const hasTools = req.tools !== undefined && req.tools !== null;
  const raw = hasTools ? arrayOf(req.tools, 'tools') : [];
  const definitions = raw.map((t, i): ToolDefinition => {
    const where = `tools[${i}]`;
    const tool = asObject(t, where);
    if (tool.type !== 'function') throw ApiError.invalid(`${where}.type`, `${where}.type must be "function"`);
    const fn = asObject(tool.function, `${where}.function`);
    if (typeof fn.name !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(fn.name)) {
      throw ApiError.invalid(`${where}.function.name`, `${where}.function.name must be 1 to 64 letters, digits, underscores or dashes`);
    }
    if (fn.description !== undefined && typeof fn.description !== 'string') throw ApiError.invalid(`${where}.function.description`, `${where}.function.description must be a string`);
    const parameters = fn.parameters === undefined || fn.parameters === null ? { type: 'object', properties: {} } : asObject(fn.parameters, `${where}.function.parameters`);
    return { name: fn.name, ...(fn.description ? { description: fn.description as string } : {}), parameters };
  });
  const names = new Set(definitions.map((d) => d.name));
  if (names.size !== definitions.length) throw ApiError.invalid('tools', 'tools must have distinct function names');
  const choice = parseToolChoice(req.tool_choice, names, hasTools);
  const parallel = bool(req, 'parallel_tool_calls') ?? true;
  if (!hasTools) return undefined;
  if (!definitions.length && choice !== 'none' && choice !== 'auto') throw ApiError.invalid('tool_choice', `tool_choice ${describe(req.tool_choice)} needs tools`);
  return { raw, definitions, choice, parallel };
}

function parseToolChoice(value: unknown, names: ReadonlySet<string>, hasTools: boolean): ToolChoice {
  if (value === undefined || value === null) return hasTools ? 'auto' : 'none';
  if (value === 'none' || value === 'auto' || value === 'required') {
    if (value === 'required' && !hasTools) throw ApiError.invalid('tool_choice', 'tool_choice "required" needs tools');
    return value;
  }
  if (typeof value === 'object' && !Array.isArray(value)) {
    const choice = value as Body;
    const fn = choice.type === 'function' && typeof choice.function === 'object' && choice.function !== null ? (choice.function as Body).name : undefined;
    if (typeof fn !== 'string') throw ApiError.invalid('tool_choice', 'tool_choice must be "none", "auto", "required" or {"type": "function", "function": {"name": ...}}');
    if (!names.has(fn)) throw ApiError.invalid('tool_choice', `tool_choice names the function "${fn}", which is not in tools`);
    return { name: fn };
  }
  throw ApiError.invalid('tool_choice', 'tool_choice must be "none", "auto", "required" or {"type": "function", "function": {"name": ...}}');
}

type Message = { role: string; content: string; [k: string]: unknown };

/**
 * Messages as the template reads them: an assistant's tool_calls carry their arguments as objects
 * (Hugging Face templates expect that; OpenAI sends JSON text). A template that renders no tools
 * gets past calls as the text the model would have written, and with tool_choice 'auto' the
 * tools in a system message.
 */
function withTools(messages: Message[], tools: ParsedTools | undefined, format: ToolCallFormat, template: string | undefined): Message[] {
  const templateKnowsTools = !!template && /\btools\b/.test(template);
  const out = messages.map((m, i) => {
    if (m.role !== 'assistant' || m.tool_calls === undefined || m.tool_calls === null) return m;
    const calls = arrayOf(m.tool_calls, `messages[${i}].tool_calls`).map((c, j) => parsePastCall(c, `messages[${i}].tool_calls[${j}]`));
    if (templateKnowsTools) return { ...m, tool_calls: calls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.args } })) };
    const text = calls.map((c) => callText(format, c.name, c.argsText)).join(format === 'hermes' ? '\n' : '');
    return { ...m, content: m.content ? `${m.content}\n${text}` : text };
  });
  // Only 'auto' needs the model to know the tools: a forced call is written by the grammar.
  if (templateKnowsTools || !tools?.definitions.length || tools.choice !== 'auto') return out;
  const prompt = toolSystemPrompt(tools.definitions);
  return out[0]?.role === 'system' ? [{ ...out[0], content: `${out[0].content}\n\n${prompt}` }, ...out.slice(1)] : [{ role: 'system', content: prompt }, ...out];
}

function parsePastCall(value: unknown, where: string): { id: unknown; name: string; args: unknown; argsText: string } {
  const call = asObject(value, where);
  const fn = asObject(call.function, `${where}.function`);
  if (typeof fn.name !== 'string') throw ApiError.invalid(`${where}.function.name`, `${where}.function.name must be a string`);
  const argsText = typeof fn.arguments === 'string' ? fn.arguments : JSON.stringify(fn.arguments ?? {});
  let args: unknown;
  try {
    args = JSON.parse(argsText);
  } catch {
    throw ApiError.invalid(`${where}.function.arguments`, `${where}.function.arguments must be JSON text`);
  }
  return { id: call.id, name: fn.name, args, argsText };
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
  const tools = parseTools(req);
  const messages = withTools(parseMessages(req.messages), tools, toolCallFormat(ctx.model.chatTemplate), ctx.model.chatTemplate);
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
      return renderChat(ctx.model.chatTemplate, list, { addGenerationPrompt: generationPrompt, bosToken: tok.bosText, eosToken: tok.eosText, tools: tools?.raw, fallback: 'chatml' });
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
  if (req.tools !== undefined && req.tools !== null) throw ApiError.invalid('tools', 'tools are for chat completions (/v1/chat/completions)');
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
    sessionId: parseSessionId(req.session_id, prompts.length * n),
    grammar: parseResponseFormat(req.response_format),
    identity: parseIdentity(req),
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

const FORMAT_TYPES = ['text', 'json_object', 'json_schema', 'grammar', 'structural_tag'];

/**
 * OpenAI's response_format ('text', 'json_object', 'json_schema' with json_schema.schema), and
 * web-llm's: 'grammar' with an EBNF `grammar`, 'json_object' with a `schema` string, and
 * 'structural_tag' with an XGrammar structural tag.
 */
function parseResponseFormat(value: unknown): { spec: GrammarSpec; param: string } | undefined {
  if (value === undefined || value === null) return undefined;
  const format = asObject(value, 'response_format');
  const param = 'response_format';
  if (typeof format.type !== 'string' || !FORMAT_TYPES.includes(format.type)) {
    throw ApiError.invalid('response_format.type', `response_format.type must be one of ${FORMAT_TYPES.map((t) => `"${t}"`).join(', ')}, got ${describe(format.type)}`);
  }
  switch (format.type) {
    case 'text':
      return undefined;
    case 'json_object':
      if (format.schema === undefined || format.schema === null) return { spec: { type: 'json_object' }, param };
      if (typeof format.schema !== 'string') throw ApiError.invalid('response_format.schema', 'response_format.schema must be a JSON schema as a string');
      return { spec: { type: 'json_schema', schema: schemaText(format.schema, 'response_format.schema') }, param };
    case 'json_schema': {
      const js = asObject(format.json_schema, 'response_format.json_schema');
      if (typeof js.name !== 'string' || !/^[A-Za-z0-9_-]{1,64}$/.test(js.name)) {
        throw ApiError.invalid('response_format.json_schema.name', 'response_format.json_schema.name must be 1 to 64 letters, digits, underscores or dashes');
      }
      if (js.strict !== undefined && js.strict !== null && typeof js.strict !== 'boolean') throw ApiError.invalid('response_format.json_schema.strict', 'response_format.json_schema.strict must be a boolean');
      if (js.schema === undefined || js.schema === null) return { spec: { type: 'json_object' }, param };
      const schema = asObject(js.schema, 'response_format.json_schema.schema');
      return { spec: { type: 'json_schema', schema: JSON.stringify(schema) }, param };
    }
    case 'structural_tag': {
      const tag = format.structural_tag;
      if (typeof tag === 'string') return { spec: { type: 'structural_tag', tag: schemaText(tag, 'response_format.structural_tag') }, param };
      return { spec: { type: 'structural_tag', tag: JSON.stringify(asObject(tag, 'response_format.structural_tag')) }, param };
    }
    default:
      if (typeof format.grammar !== 'string' || !format.grammar.trim()) throw ApiError.invalid('response_format.grammar', 'response_format.grammar must be an EBNF grammar (a non-empty string)');
      return { spec: { type: 'grammar', grammar: format.grammar }, param };
  }
}

/** A schema given as JSON text: it must parse to an object. */
function schemaText(text: string, param: string): string {
  let schema: unknown;
  try {
    schema = JSON.parse(text);
  } catch (e) {
    throw ApiError.invalid(param, `${param} is not JSON: ${(e as Error).message}`);
  }
  asObject(schema, param);
  return text;
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

/** A session continues one sequence: one prompt, one choice. */
function parseSessionId(value: unknown, choices: number): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string' || value === '') throw ApiError.invalid('session_id', 'session_id must be a non-empty string if provided');
  if (choices !== 1) throw ApiError.invalid('session_id', `a request on a session has one prompt and n = 1; this one has ${choices} choices`);
  return value;
}

const MAX_CACHE_SALT = 1024;

/** vLLM's rule: absent, or a non-empty string. */
function parseCacheSalt(value: unknown): string {
  if (value === undefined || value === null) return '';
  if (typeof value !== 'string' || value === '') throw ApiError.invalid('cache_salt', 'cache_salt must be a non-empty string if provided');
  if (value.length > MAX_CACHE_SALT) throw ApiError.invalid('cache_salt', `cache_salt may have at most ${MAX_CACHE_SALT} characters, got ${value.length}`);
  return value;
}

// OpenAI's metadata limits: 16 pairs, keys up to 64 characters, string values up to 512.
const MAX_METADATA_KEYS = 16;
const MAX_METADATA_KEY = 64;
const MAX_METADATA_VALUE = 512;
/** vLLM takes any integer; bounded so ordering arithmetic stays exact. */
const MAX_PRIORITY = 2 ** 31 - 1;

function parseIdentity(req: Body): RequestIdentity {
  const metadata = parseMetadata(req.metadata);
  const priority = int(req, 'priority', -MAX_PRIORITY, MAX_PRIORITY) ?? 0;
  const id = (key: string) => {
    const v = metadata[key];
    if (v === undefined) return null;
    if (v === '') throw ApiError.invalid(`metadata.${key}`, `metadata.${key} must be a non-empty string if provided`);
    return v;
  };
  return { workflowId: id('workflow_id'), agentId: id('agent_id'), priority };
}

/** OpenAI's metadata: an object of at most 16 string values, keys and values of bounded length. */
function parseMetadata(value: unknown): Record<string, string> {
  if (value === undefined || value === null) return {};
  const entries = Object.entries(asObject(value, 'metadata'));
  if (entries.length > MAX_METADATA_KEYS) throw ApiError.invalid('metadata', `metadata may have at most ${MAX_METADATA_KEYS} keys, got ${entries.length}`);
  const out: Record<string, string> = {};
  for (const [key, v] of entries) {
    if (key.length > MAX_METADATA_KEY) throw ApiError.invalid('metadata', `metadata keys may have at most ${MAX_METADATA_KEY} characters, got ${describe(key)}`);
    if (typeof v !== 'string') throw ApiError.invalid(`metadata.${key}`, `metadata.${key} must be a string, got ${describe(v)}`);
    if (v.length > MAX_METADATA_VALUE) throw ApiError.invalid(`metadata.${key}`, `metadata.${key} may have at most ${MAX_METADATA_VALUE} characters, got ${v.length}`);
    out[key] = v;
  }
  return out;
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
