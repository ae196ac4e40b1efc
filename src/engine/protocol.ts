// The OpenAI chat and completions protocol as wgserve speaks it: the request and response shapes
// of the OpenAI API, with the extensions @mlc-ai/web-llm adds (repetition_penalty, ignore_eos,
// the `abort` finish reason, usage.extra), so apps written against either keep working.

export type FinishReason = 'stop' | 'length' | 'tool_calls' | 'abort';

export interface StreamOptions {
  include_usage?: boolean;
}

/** Sampling and stopping fields shared by chat and text completion requests. */
export interface SamplingRequestFields {
  model?: string | null;
  stream?: boolean | null;
  stream_options?: StreamOptions | null;
  n?: number | null;
  max_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  /** Extension (vLLM, llama.cpp): keep the k most likely tokens; 0 or -1 is off. */
  top_k?: number | null;
  /** Extension (vLLM, llama.cpp): drop tokens less likely than min_p times the most likely. */
  min_p?: number | null;
  frequency_penalty?: number | null;
  presence_penalty?: number | null;
  repetition_penalty?: number | null;
  logit_bias?: Record<string, number> | null;
  seed?: number | null;
  stop?: string | null | string[];
  /** Extension (vLLM): token ids that end generation besides the model's end-of-turn tokens. */
  stop_token_ids?: number[] | null;
  ignore_eos?: boolean;
  top_logprobs?: number | null;
  user?: string;
  /**
   * Extension (vLLM): prefix-cache salt. Requests share cached KV pages only when their salts are
   * equal (or both absent), so a tenant's prompts cannot be probed through cache timing by another.
   */
  cache_salt?: string | null;
  /** Output held to JSON, a JSON schema, or (web-llm) an EBNF grammar, by a token mask on the GPU. */
  response_format?: ResponseFormat | null;
  /**
   * OpenAI's metadata map (at most 16 string values). wgserve reads `workflow_id` (calls with the
   * same id are one workflow, scheduled together) and `agent_id` (the caller inside it).
   */
  metadata?: Record<string, string> | null;
  /** Extension (vLLM): scheduling priority, an integer; lower runs earlier; default 0. */
  priority?: number | null;
  /**
   * Extension (wgserve): a session (engine.sessions.create) whose KV the request starts from, as far
   * as its tokens agree with the session's; when it ends, the session holds its context (prompt and
   * reply). Send the whole conversation every time: only what is new is computed. n must be 1.
   */
  session_id?: string | null;
}

/** OpenAI's response formats and web-llm's (an EBNF grammar, a schema string, a structural tag). */
export interface ResponseFormat {
  type?: 'text' | 'json_object' | 'json_schema' | 'grammar' | 'structural_tag';
  /** OpenAI json_schema. */
  json_schema?: { name: string; description?: string; schema?: Record<string, unknown>; strict?: boolean | null };
  /** web-llm json_object: a JSON schema as text. */
  schema?: string;
  /** web-llm grammar: EBNF (XGrammar's dialect). */
  grammar?: string;
  /** web-llm structural_tag: an XGrammar structural tag. */
  structural_tag?: object | string;
}

export interface ChatCompletionContentPartText {
  type: 'text';
  text: string;
}

/** Image and audio parts are part of the protocol; this engine answers them with an error (text models only). */
export type ChatCompletionContentPart =
  | ChatCompletionContentPartText
  | { type: 'image_url'; image_url: { url: string; detail?: 'auto' | 'low' | 'high' } }
  | { type: 'input_audio'; input_audio: unknown };

export interface ChatCompletionMessageToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

export type ChatCompletionMessageParam =
  | { role: 'system' | 'developer'; content: string | ChatCompletionContentPartText[]; name?: string }
  | { role: 'user'; content: string | ChatCompletionContentPart[]; name?: string }
  | { role: 'assistant'; content?: string | ChatCompletionContentPartText[] | null; name?: string; tool_calls?: ChatCompletionMessageToolCall[] }
  | { role: 'tool'; content: string | ChatCompletionContentPartText[]; tool_call_id: string };

export interface ChatCompletionTool {
  type: 'function';
  function: { name: string; description?: string; parameters?: Record<string, unknown> };
}

export interface ChatCompletionRequestBase extends SamplingRequestFields {
  messages: ChatCompletionMessageParam[];
  /** OpenAI's newer name for max_tokens. */
  max_completion_tokens?: number | null;
  logprobs?: boolean | null;
  /** Functions the model may call (rendered by the chat template; calls come back in message.tool_calls). */
  tools?: ChatCompletionTool[];
  /** 'auto' (default with tools): text or calls; 'required' / a named function: the output is a valid call. */
  tool_choice?: 'none' | 'auto' | 'required' | { type: 'function'; function: { name: string } };
  /** Extension (vLLM): end the prompt with an assistant turn's header (default true). */
  add_generation_prompt?: boolean | null;
  /** Extension (vLLM): the last message is an assistant's whose text the model continues. */
  continue_final_message?: boolean | null;
  /** Several calls in one response (default true). */
  parallel_tool_calls?: boolean | null;
}
export interface ChatCompletionRequestNonStreaming extends ChatCompletionRequestBase {
  stream?: false | null;
}
export interface ChatCompletionRequestStreaming extends ChatCompletionRequestBase {
  stream: true;
}
export type ChatCompletionRequest = ChatCompletionRequestNonStreaming | ChatCompletionRequestStreaming;

export interface CompletionCreateParamsBase extends SamplingRequestFields {
  /** Text, or token ids; an array of several prompts gives n choices for each. */
  prompt: string | string[] | number[] | number[][];
  echo?: boolean | null;
  /** OpenAI: 0..5 alternatives per token; web-llm: a boolean with top_logprobs. */
  logprobs?: number | boolean | null;
  suffix?: string | null;
  best_of?: number | null;
}
export interface CompletionCreateParamsNonStreaming extends CompletionCreateParamsBase {
  stream?: false | null;
}
export interface CompletionCreateParamsStreaming extends CompletionCreateParamsBase {
  stream: true;
}
export type CompletionCreateParams = CompletionCreateParamsNonStreaming | CompletionCreateParamsStreaming;

export interface TopLogprob {
  token: string;
  bytes: number[] | null;
  logprob: number;
}

export interface ChatCompletionTokenLogprob extends TopLogprob {
  top_logprobs: TopLogprob[];
}

export interface ChoiceLogprobs {
  content: ChatCompletionTokenLogprob[] | null;
  refusal: ChatCompletionTokenLogprob[] | null;
}

/** Text completion logprobs: the chat form (`content`) and OpenAI's legacy arrays side by side. */
export interface CompletionLogprobs extends ChoiceLogprobs {
  tokens: string[];
  token_logprobs: number[];
  top_logprobs: Record<string, number>[];
  text_offset: number[];
}

export interface CompletionUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  /** cached_tokens: prompt tokens taken from the prefix cache instead of computed (0 on a miss). */
  prompt_tokens_details: { cached_tokens: number };
  /** Timings of the request (web-llm's usage.extra). */
  extra: {
    e2e_latency_s: number;
    prefill_tokens_per_s: number;
    decode_tokens_per_s: number;
    time_to_first_token_s: number;
    time_per_output_token_s: number;
  };
}

export interface ChatCompletionMessage {
  role: 'assistant';
  content: string | null;
  refusal: string | null;
  /** The calls the model made (then finish_reason is 'tool_calls'). */
  tool_calls?: ChatCompletionMessageToolCall[];
}

/** A piece of a streamed tool call: id, type and name come first, then pieces of the arguments. */
export interface ChatCompletionChunkToolCall {
  index: number;
  id?: string;
  type?: 'function';
  function: { name?: string; arguments: string };
}

export interface ChatCompletionChoice {
  index: number;
  message: ChatCompletionMessage;
  finish_reason: FinishReason;
  logprobs: ChoiceLogprobs | null;
}

export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  system_fingerprint: string;
  choices: ChatCompletionChoice[];
  usage: CompletionUsage;
}

export interface ChatCompletionChunkChoice {
  index: number;
  delta: { role?: 'assistant'; content?: string | null; tool_calls?: ChatCompletionChunkToolCall[] };
  finish_reason: FinishReason | null;
  logprobs?: ChoiceLogprobs | null;
}

export interface ChatCompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  system_fingerprint: string;
  choices: ChatCompletionChunkChoice[];
  /** Only on the last chunk, and only with stream_options.include_usage. */
  usage?: CompletionUsage;
}

export interface CompletionChoice {
  index: number;
  text: string;
  finish_reason: FinishReason | null;
  logprobs: CompletionLogprobs | null;
}

export interface Completion {
  id: string;
  object: 'text_completion';
  created: number;
  model: string;
  system_fingerprint: string;
  choices: CompletionChoice[];
  usage?: CompletionUsage;
}

export interface ModelCard {
  id: string;
  object: 'model';
  created: number;
  owned_by: string;
}

export interface ModelList {
  object: 'list';
  data: ModelCard[];
}

/** Per-request options of create(). */
export interface RequestOptions {
  /** Aborts the request: its sequences stop and free their pages; streams end with finish_reason 'abort'. */
  signal?: AbortSignal;
}

/** `chat.completions` of an engine (in this tab or behind a worker). */
export interface ChatCompletionsApi {
  create(request: ChatCompletionRequestNonStreaming, options?: RequestOptions): Promise<ChatCompletion>;
  create(request: ChatCompletionRequestStreaming, options?: RequestOptions): Promise<AsyncIterable<ChatCompletionChunk>>;
  create(request: ChatCompletionRequestBase, options?: RequestOptions): Promise<AsyncIterable<ChatCompletionChunk> | ChatCompletion>;
}

/** `completions` of an engine. */
export interface CompletionsApi {
  create(request: CompletionCreateParamsNonStreaming, options?: RequestOptions): Promise<Completion>;
  create(request: CompletionCreateParamsStreaming, options?: RequestOptions): Promise<AsyncIterable<Completion>>;
  create(request: CompletionCreateParamsBase, options?: RequestOptions): Promise<AsyncIterable<Completion> | Completion>;
}

/** vLLM's /tokenize request: a chat (rendered as a chat completion would be) or a text. */
export type TokenizeRequest =
  | { model?: string | null; messages: ChatCompletionMessageParam[]; add_generation_prompt?: boolean | null; continue_final_message?: boolean | null; tools?: ChatCompletionTool[] }
  | { model?: string | null; prompt: string; add_special_tokens?: boolean | null };

export interface TokenizeResponse {
  count: number;
  /** The context length. */
  max_model_len: number;
  tokens: number[];
}

/** engine.sessions.create(): an empty session, or one whose context is these messages or this prompt (computed now). */
export type SessionCreateRequest =
  | { model?: string | null; cache_salt?: string | null; messages?: undefined; prompt?: undefined }
  | { model?: string | null; cache_salt?: string | null; messages: ChatCompletionMessageParam[]; tools?: ChatCompletionTool[]; add_generation_prompt?: boolean | null }
  | { model?: string | null; cache_salt?: string | null; prompt: string | number[] };

/** A session: a KV context kept between requests, its pages referenced (pinned) unless unpinned to make room. */
export interface SessionObject {
  id: string;
  object: 'session';
  /** Tokens of its context. */
  tokens: number;
  /** KV pages it references now (shared pages count for each session). */
  pages: number;
  /** false: unpinned to the prefix cache (the next request recomputes what was evicted). */
  pinned: boolean;
  /** create() with messages or a prompt, and clone(): prompt tokens of the context, and those not computed. */
  usage?: { prompt_tokens: number; prompt_tokens_details: { cached_tokens: number } };
}

/** `sessions` of an engine. */
export interface SessionsApi {
  create(request?: SessionCreateRequest, options?: RequestOptions): Promise<SessionObject>;
  /** A session with the context of `id`, sharing its pages: nothing is computed. */
  clone(id: string): Promise<SessionObject>;
  retrieve(id: string): Promise<SessionObject>;
  /** Releases its pages; false when there is no such session. */
  destroy(id: string): Promise<boolean>;
}
