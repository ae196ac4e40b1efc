// The Prompt API's LanguageModel (webmachinelearning/prompt-api) over a wgserve engine. A session
// is its history of turns (a turn: the messages of one prompt() with the response, or of one
// append()) in the engine's chat format, and an engine session (engine.sessions) holding its KV
// pinned: every call renders the whole history and names the engine session (session_id), so
// only what the call adds is computed; create() and append() prefill (a max_tokens 0 request),
// prompt() leaves its reply's KV in the session, clone() shares every page (nothing computed),
// destroy() releases them. On an engine without sessions, reuse comes from the prefix cache.
// Calls on one session run one at a time, in order.
import type { ChatCompletionChunk, ChatCompletionMessageParam, ChatCompletionRequestBase } from '../engine/protocol.js';
import type { EngineProvider, PromptApiEngine } from './backend.js';
import {
  asDictionary, canonicalizeConstraint, canonicalizeCoreOptions, canonicalizePrompt, type CheckedCoreOptions, type ResponseConstraint, type SamplingLimits,
} from './canonicalize.js';
import { domError, quotaExceeded, typeError } from './errors.js';
import { engineTools, executeCalls, MAX_TOOL_ROUNDS, readReply, tooManyRounds, type ChatMessage } from './tool-calls.js';
import type {
  Availability, CanonicalMessage, LanguageModelCreateCoreOptions, LanguageModelCreateOptions, LanguageModelExpected, LanguageModelParams, LanguageModelPrompt, LanguageModelSamplingMode, LanguageModelTool,
} from './types.js';

export interface PromptApiOptions {
  /** Most tokens in one response (default: until the model ends its turn or the context is full). */
  maxResponseTokens?: number;
  /**
   * Compute the KV of the context on create() and append() (a max_tokens 0 request), so the next
   * prompt finds it in the engine's prefix cache (default true).
   */
  prefill?: boolean;
  /** BCP 47 tags of the languages the model reads and writes (default ['en']). */
  languages?: readonly string[];
  /**
   * Honour the deprecated topK / temperature create() options and attributes, as Chrome does in
   * extension contexts (default false: as in web pages, they are ignored and the attributes are
   * undefined; samplingMode chooses the sampling).
   */
  legacySamplingParams?: boolean;
}

/** params(): what the legacy topK / temperature options may be. */
export const SAMPLING_LIMITS: SamplingLimits = { defaultTopK: 40, maxTopK: 128, defaultTemperature: 0.7, maxTemperature: 2 };

/** samplingMode as sampling parameters: 'most-predictable' is greedy (the same text every time). */
const SAMPLING_MODES: Record<LanguageModelSamplingMode, { temperature: number; topK: number }> = {
  'most-predictable': { temperature: 0, topK: 1 },
  predictable: { temperature: 0.3, topK: 10 },
  balanced: { temperature: SAMPLING_LIMITS.defaultTemperature, topK: SAMPLING_LIMITS.defaultTopK },
  creative: { temperature: 1, topK: 64 },
  'most-creative': { temperature: 1.5, topK: SAMPLING_LIMITS.maxTopK },
};


interface Turn {
  messages: ChatMessage[];
  /** initialPrompts: never evicted. */
  initial: boolean;
}

/** What a session and its clones share. */
interface SessionConfig {
  engine: PromptApiEngine;
  contextWindow: number;
  samplingMode: LanguageModelSamplingMode;
  topK: number;
  temperature: number;
  expectedInputs: LanguageModelExpected[];
  expectedOutputs: LanguageModelExpected[];
  tools: LanguageModelTool[];
  api: PromptApiOptions;
}

interface SessionState {
  config: SessionConfig;
  /** The engine session holding the context's KV, or null (an engine without sessions). */
  engineSession: string | null;
  turns: Turn[];
  usage: number;
  createSignal?: AbortSignal;
}

/** How the rendered chat ends: an assistant turn's header, inside the last (prefix) message, or neither. */
type Ending = 'generate' | 'continue' | 'none';

const INTERNAL = Symbol('LanguageModel');
/** Releases the engine session of a LanguageModel session that was dropped without destroy(). */
const engineSessionReaper = new FinalizationRegistry<{ engine: PromptApiEngine; id: string }>(({ engine, id }) => releaseEngineSession(engine, id));
const ProgressEventClass: typeof ProgressEvent = globalThis.ProgressEvent ?? class ProgressEventPolyfill extends Event {
  readonly lengthComputable: boolean;
  readonly loaded: number;
  readonly total: number;
  constructor(type: string, init: ProgressEventInit = {}) {
    super(type, init);
    this.lengthComputable = init.lengthComputable ?? false;
    this.loaded = init.loaded ?? 0;
    this.total = init.total ?? 0;
  }
} as unknown as typeof ProgressEvent;

export class LanguageModelSession extends EventTarget {
  readonly #config: SessionConfig;
  #engineSession: string | null;
  #turns: Turn[];
  #usage: number;
  readonly #destruction = new AbortController();
  #tail: Promise<unknown> = Promise.resolve();
  #onContextOverflow: ((event: Event) => unknown) | null = null;
  #onQuotaOverflow: ((event: Event) => unknown) | null = null;

  /** Sessions come from LanguageModel.create() and clone(). */
  constructor(token: symbol, state: SessionState) {
    if (token !== INTERNAL) throw new TypeError('Illegal constructor: use LanguageModel.create()');
    super();
    this.#config = state.config;
    this.#engineSession = state.engineSession;
    if (state.engineSession) engineSessionReaper.register(this, { engine: state.config.engine, id: state.engineSession }, this);
    this.#turns = state.turns;
    this.#usage = state.usage;
    const created = state.createSignal;
    created?.addEventListener('abort', () => this.#destroy(created.reason), { once: true });
    this.addEventListener('contextoverflow', (e) => this.#onContextOverflow?.call(this, e));
    this.addEventListener('quotaoverflow', (e) => this.#onQuotaOverflow?.call(this, e));
  }

  get contextUsage(): number {
    return this.#usage;
  }

  get contextWindow(): number {
    return this.#config.contextWindow;
  }

  /** The older name of contextUsage. */
  get inputUsage(): number {
    return this.#usage;
  }

  /** The older name of contextWindow. */
  get inputQuota(): number {
    return this.#config.contextWindow;
  }

  /** undefined unless legacySamplingParams (the attribute is deprecated outside extensions). */
  get topK(): number | undefined {
    return this.#config.api.legacySamplingParams ? this.#config.topK : undefined;
  }

  /** undefined unless legacySamplingParams. */
  get temperature(): number | undefined {
    return this.#config.api.legacySamplingParams ? this.#config.temperature : undefined;
  }

  get samplingMode(): LanguageModelSamplingMode {
    return this.#config.samplingMode;
  }

  get oncontextoverflow(): ((event: Event) => unknown) | null {
    return this.#onContextOverflow;
  }

  set oncontextoverflow(handler: ((event: Event) => unknown) | null) {
    this.#onContextOverflow = typeof handler === 'function' ? handler : null;
  }

  /** The older name of oncontextoverflow (its event, quotaoverflow, fires with contextoverflow). */
  get onquotaoverflow(): ((event: Event) => unknown) | null {
    return this.#onQuotaOverflow;
  }

  set onquotaoverflow(handler: ((event: Event) => unknown) | null) {
    this.#onQuotaOverflow = typeof handler === 'function' ? handler : null;
  }

  async prompt(input: LanguageModelPrompt, options: { responseConstraint?: object; omitResponseConstraintInput?: boolean; signal?: AbortSignal } = {}): Promise<string> {
    const o = asDictionary(options, 'options');
    const signal = this.#signal(o.signal);
    return this.#run(signal, () => this.#respond(input, o, signal));
  }

  /** A ReadableStream of the response's text as it is generated (each chunk the new text). */
  promptStreaming(input: LanguageModelPrompt, options: { responseConstraint?: object; omitResponseConstraintInput?: boolean; signal?: AbortSignal } = {}): ReadableStream<string> {
    const o = asDictionary(options, 'options');
    const cancel = new AbortController();
    const signal = this.#signal(o.signal, cancel.signal);
    signal.throwIfAborted();
    let done = false;
    return new ReadableStream<string>({
      start: (controller) => {
        const push = (chunk: string) => void (!done && controller.enqueue(chunk));
        this.#run(signal, () => this.#respond(input, o, signal, push)).then(
          () => void (!done && ((done = true), controller.close())),
          (e: unknown) => void (!done && ((done = true), controller.error(e))),
        );
      },
      cancel: (reason: unknown) => {
        done = true;
        cancel.abort(reason);
      },
    });
  }

  /** Adds messages to the context without a response. */
  async append(input: LanguageModelPrompt, options: { signal?: AbortSignal } = {}): Promise<undefined> {
    const o = asDictionary(options, 'options');
    const signal = this.#signal(o.signal);
    await this.#run(signal, () => this.#append(input, signal));
    return undefined;
  }

  /** How much of the context window `input` would take (tokens), as prompt() would send it. */
  async measureContextUsage(input: LanguageModelPrompt, options: { responseConstraint?: object; omitResponseConstraintInput?: boolean; signal?: AbortSignal } = {}): Promise<number> {
    const o = asDictionary(options, 'options');
    const signal = this.#signal(o.signal);
    signal.throwIfAborted();
    const constraint = checkConstraintOptions(o);
    const turn = turnMessages(canonicalizePrompt(input, false), constraint);
    return raceAbort(this.#count(turn, 'none'), signal);
  }

  /** The older name of measureContextUsage. */
  measureInputUsage(input: LanguageModelPrompt, options: { responseConstraint?: object; omitResponseConstraintInput?: boolean; signal?: AbortSignal } = {}): Promise<number> {
    return this.measureContextUsage(input, options);
  }

  /** A new session with this one's context (after the calls queued before it) and options. */
  async clone(options: { signal?: AbortSignal } = {}): Promise<LanguageModelSession> {
    const o = asDictionary(options, 'options');
    const signal = this.#signal(o.signal);
    return this.#run(signal, async () => {
      const Session = this.constructor as new (token: symbol, state: SessionState) => LanguageModelSession;
      const turns = this.#turns.map((t) => ({ initial: t.initial, messages: t.messages.map((m) => ({ ...m })) }));
      const sessions = this.#config.engine.sessions;
      let engineSession: string | null = null;
      if (sessions && this.#engineSession) {
        try {
          engineSession = (await sessions.clone(this.#engineSession)).id;
        } catch (e) {
          // At the engine's session limit the clone runs on the prefix cache (its prompts carry the
          // whole history); so do both when the engine no longer has this session.
          if (signal.aborted || !(isSessionLimit(e) || isSessionGone(e))) throw engineError(e, signal);
          if (isSessionGone(e)) this.#forgetEngineSession();
        }
        if (signal.aborted && engineSession) releaseEngineSession(this.#config.engine, engineSession);
        signal.throwIfAborted();
      }
      return new Session(INTERNAL, { config: this.#config, engineSession, turns, usage: this.#usage });
    });
  }

  /** Ends the session: calls under way and later ones reject with an AbortError. */
  destroy(): void {
    this.#destroy(domError('AbortError', 'The session was destroyed.'));
  }

  #destroy(reason: unknown): void {
    if (this.#destruction.signal.aborted) return;
    this.#destruction.abort(reason);
    if (this.#engineSession) {
      engineSessionReaper.unregister(this);
      releaseEngineSession(this.#config.engine, this.#engineSession);
    }
  }

  /**
   * `call` on the engine session (null: none). When the engine no longer has it (it expired
   * idle, or went with a reload), the session goes on without one and `call` runs again: every
   * request carries the whole history, so only reuse is lost.
   */
  async #onEngineSession<T>(call: (engineSession: string | null) => Promise<T>): Promise<T> {
    const id = this.#engineSession;
    try {
      return await call(id);
    } catch (e) {
      if (!id || !isSessionGone(e)) throw e;
      this.#forgetEngineSession();
      return call(null);
    }
  }

  #forgetEngineSession(): void {
    engineSessionReaper.unregister(this);
    this.#engineSession = null;
  }

  /** The session's destruction signal with the call's own. */
  #signal(signal: unknown, extra?: AbortSignal): AbortSignal {
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw typeError('signal must be an AbortSignal');
    return AbortSignal.any([this.#destruction.signal, ...(signal ? [signal] : []), ...(extra ? [extra] : [])]);
  }

  /** Runs `body` after the session's earlier calls; rejects as soon as `signal` aborts. */
  #run<T>(signal: AbortSignal, body: () => Promise<T>): Promise<T> {
    if (signal.aborted) return Promise.reject(signal.reason);
    const previous = this.#tail;
    const result = (async () => {
      await previous;
      signal.throwIfAborted();
      return body();
    })();
    this.#tail = result.catch(() => undefined);
    return raceAbort(result, signal);
  }

  async #respond(input: LanguageModelPrompt, options: Record<string, unknown>, signal: AbortSignal, onChunk?: (text: string) => void): Promise<string> {
    const constraint = checkConstraintOptions(options);
    const messages = canonicalizePrompt(input, this.#usage > 0);
    const responseFormat = constraint ? engineResponseFormat(constraint.constraint) : undefined;
    let turn = turnMessages(messages, constraint);
    const last = messages[messages.length - 1];
    const prefix = last.prefix ? last.content : null;
    const c = this.#config;
    let text = '';
    // Each round: the model replies; if it called tools, their results join the turn and it goes on.
    for (let round = 0; ; round++) {
      const continuing = prefix !== null && round === 0;
      // Room is made for the turn as the context will hold it, reply included: so a reply that
      // runs to the end of the window still leaves a context that fits.
      const needed = await this.#makeRoom(turn, !continuing, signal);
      const request = {
        messages: [...this.#history(), ...turn] as ChatCompletionMessageParam[],
        stream: true,
        temperature: c.temperature,
        top_k: c.topK,
        max_tokens: Math.min(c.api.maxResponseTokens ?? Infinity, c.contextWindow - needed),
        ...(continuing ? { continue_final_message: true, add_generation_prompt: false } : {}),
        ...(responseFormat ? { response_format: responseFormat } : {}),
        ...(c.tools.length ? { tools: engineTools(c.tools), tool_choice: 'auto' } : {}),
      } as ChatCompletionRequestBase;
      let reply;
      try {
        const stream = await this.#onEngineSession((id) => c.engine.chat.completions.create(id ? { ...request, session_id: id } : request, { signal }));
        reply = await readReply(stream as AsyncIterable<ChatCompletionChunk>, onChunk);
      } catch (e) {
        throw engineError(e, signal);
      }
      signal.throwIfAborted();
      if (reply.finish === 'abort') throw domError('AbortError', 'The engine stopped the response (interrupted or unloaded).');
      text += reply.text;
      if (reply.finish !== 'tool_calls' || !reply.calls.length) {
        turn = continuing ? [...turn.slice(0, -1), { role: 'assistant', content: prefix + reply.text }] : [...turn, { role: 'assistant', content: reply.text }];
        break;
      }
      if (round + 1 >= MAX_TOOL_ROUNDS) throw tooManyRounds();
      const called: ChatMessage = { role: 'assistant', content: (continuing ? prefix : '') + reply.text || null, tool_calls: reply.calls };
      turn = [...(continuing ? turn.slice(0, -1) : turn), called, ...(await executeCalls(reply.calls, c.tools))];
      signal.throwIfAborted();
    }
    this.#turns = [...this.#turns, { messages: turn, initial: false }];
    this.#usage = await this.#count(this.#history(), 'none');
    return text;
  }

  async #append(input: LanguageModelPrompt, signal: AbortSignal): Promise<void> {
    // An empty sequence adds nothing (as Chrome does; the spec would add an empty user message).
    if (Array.isArray(input) && input.length === 0) return;
    const turn = turnMessages(canonicalizePrompt(input, this.#usage > 0), null);
    let usage = await this.#makeRoom(turn, false, signal);
    const messages = [...this.#history(), ...turn];
    if (this.#config.api.prefill !== false) {
      try {
        usage = await this.#onEngineSession((id) => prefill(this.#config.engine, messages, this.#config.tools, signal, id));
      } catch (e) {
        throw engineError(e, signal);
      }
    }
    signal.throwIfAborted();
    this.#turns = [...this.#turns, { messages: turn, initial: false }];
    this.#usage = usage;
  }

  /**
   * Evicts the oldest turns that are not initial prompts, one at a time, until the history and
   * `turn` (`withReply`: with an empty reply, as the context will hold it) fit the context window
   * with room for a token more (a reply's first); fires contextoverflow if any went.
   * Returns the tokens of history and turn. When even the initial prompts and `turn` alone do not
   * fit: a QuotaExceededError, and nothing is evicted.
   */
  async #makeRoom(turn: ChatMessage[], withReply: boolean, signal: AbortSignal): Promise<number> {
    const window = this.#config.contextWindow;
    const held: ChatMessage[] = withReply ? [...turn, { role: 'assistant', content: '' }] : turn;
    let kept = this.#turns;
    for (;;) {
      const count = await this.#count([...kept.flatMap((t) => t.messages), ...held], 'none');
      signal.throwIfAborted();
      if (count < window) {
        if (kept !== this.#turns) {
          this.#turns = kept;
          this.#usage = await this.#count(this.#history(), 'none');
          this.dispatchEvent(new Event('contextoverflow'));
          this.dispatchEvent(new Event('quotaoverflow'));
        }
        return count;
      }
      const oldest = kept.findIndex((t) => !t.initial);
      if (oldest < 0) {
        // As the spec counts it: the context kept (initial prompts) plus what the input measures alone.
        const requested = (await this.#count(kept.flatMap((t) => t.messages), 'none')) + (await this.#count(turn, 'none'));
        throw quotaExceeded(`The input needs ${requested} tokens of context with the initial prompts; the context window is ${window} tokens.`, { requested, quota: window });
      }
      kept = kept.filter((_, i) => i !== oldest);
    }
  }

  #history(): ChatMessage[] {
    return this.#turns.flatMap((t) => t.messages);
  }

  async #count(messages: ChatMessage[], ending: Ending): Promise<number> {
    return countTokens(this.#config.engine, messages, ending, this.#config.tools);
  }

  /** LanguageModel.create(), for the class createLanguageModelClass makes. */
  static async createWith(Session: new (token: symbol, state: SessionState) => LanguageModelSession, provider: EngineProvider, api: PromptApiOptions, options: unknown): Promise<LanguageModelSession> {
    const o = asDictionary(options, 'options');
    const signal = o.signal;
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw typeError('signal must be an AbortSignal');
    signal?.throwIfAborted();
    const core = canonicalizeCoreOptions(o, SAMPLING_LIMITS, !!api.legacySamplingParams);
    const initial = initialMessages(o.initialPrompts);
    if (availabilityOf(provider, core, api) === 'unavailable') {
      throw domError('NotSupportedError', `The model cannot take these options: it reads and writes text in ${languagesOf(api).join(', ')}.`);
    }
    const monitor = new EventTarget();
    if (o.monitor !== undefined) {
      if (typeof o.monitor !== 'function') throw typeError('monitor must be a function');
      (o.monitor as (m: EventTarget) => void).call(undefined, monitor);
    }
    const progress = progressReporter(monitor);
    progress(0);
    const work = (async () => {
      let engine: PromptApiEngine;
      try {
        // 1 is reported once the session is ready, so stop the load's own reports just below it.
        engine = await provider.engine((f) => progress(Math.min(f, 1 - 1 / 0x10000)));
      } catch (e) {
        throw domError('NetworkError', `The model could not be loaded: ${(e as Error).message}`);
      }
      signal?.throwIfAborted();
      const tools = core.tools ?? [];
      if (tools.length) await requireToolCalls(engine, tools, signal);
      const chat = initial.map(chatMessage);
      const measured = await engine.tokenize({ messages: chat as ChatCompletionMessageParam[], add_generation_prompt: false, ...(tools.length ? { tools: engineTools(tools) } : {}) });
      const window = measured.max_model_len;
      if (measured.count >= window) {
        throw quotaExceeded(`The initial prompts need ${measured.count} tokens; the context window is ${window} tokens.`, { requested: measured.count, quota: window });
      }
      const engineSession = await createEngineSession(engine, chat.length && api.prefill !== false ? chat : [], tools, signal);
      try {
        if (!engineSession && chat.length && api.prefill !== false) {
          try {
            await prefill(engine, chat, tools, signal);
          } catch (e) {
            throw engineError(e, signal);
          }
        }
        progress(1);
        // A listener of the last progress event may abort: let that land before the session exists.
        await new Promise((resolve) => setTimeout(resolve, 0));
        signal?.throwIfAborted();
      } catch (e) {
        if (engineSession) releaseEngineSession(engine, engineSession);
        throw e;
      }
      const config = sessionConfig(engine, window, core, api);
      return new Session(INTERNAL, { config, engineSession, turns: chat.length ? [{ messages: chat, initial: true }] : [], usage: measured.count, createSignal: signal });
    })();
    return signal ? raceAbort(work, signal) : work;
  }
}

/** The LanguageModel interface object: its statics; sessions are its instances (it cannot be constructed). */
export interface LanguageModelClass {
  new (token: symbol, state: never): LanguageModelSession;
  readonly prototype: LanguageModelSession;
  create(options?: LanguageModelCreateOptions): Promise<LanguageModelSession>;
  availability(options?: LanguageModelCreateCoreOptions): Promise<Availability>;
  params(): Promise<LanguageModelParams | null>;
}

/** The LanguageModel interface object for a provider: create(), availability(), params(). */
export function createLanguageModelClass(provider: EngineProvider, api: PromptApiOptions = {}): LanguageModelClass {
  return class LanguageModel extends LanguageModelSession {
    static create(options: LanguageModelCreateOptions = {}): Promise<LanguageModelSession> {
      return LanguageModelSession.createWith(LanguageModel, provider, api, options);
    }

    static async availability(options: LanguageModelCreateCoreOptions = {}): Promise<Availability> {
      const core = canonicalizeCoreOptions(asDictionary(options, 'options'), SAMPLING_LIMITS, !!api.legacySamplingParams);
      return availabilityOf(provider, core, api);
    }

    static async params(): Promise<LanguageModelParams | null> {
      return provider.availability() === 'unavailable' ? null : { ...SAMPLING_LIMITS };
    }
  };
}


function sessionConfig(engine: PromptApiEngine, contextWindow: number, core: CheckedCoreOptions, api: PromptApiOptions): SessionConfig {
  const raw = !!api.legacySamplingParams && (core.topK !== undefined || core.temperature !== undefined);
  const samplingMode = core.samplingMode ?? 'balanced';
  const mode = SAMPLING_MODES[samplingMode];
  return {
    engine,
    contextWindow,
    samplingMode,
    topK: raw ? core.topK ?? SAMPLING_LIMITS.defaultTopK : mode.topK,
    temperature: raw ? core.temperature ?? SAMPLING_LIMITS.defaultTemperature : mode.temperature,
    expectedInputs: core.expectedInputs ?? [],
    expectedOutputs: core.expectedOutputs ?? [],
    tools: core.tools ?? [],
    api,
  };
}

function languagesOf(api: PromptApiOptions): readonly string[] {
  return api.languages ?? ['en'];
}

/** The provider's availability, or 'unavailable' when an expected type is not text or a language is not the model's. */
function availabilityOf(provider: EngineProvider, core: CheckedCoreOptions, api: PromptApiOptions): Availability {
  const base = provider.availability();
  if (base === 'unavailable') return base;
  const supported = languagesOf(api).map((l) => l.toLowerCase());
  const speaks = (tag: string) => supported.some((s) => tag.toLowerCase() === s || tag.toLowerCase().startsWith(`${s}-`));
  const typeOk = (e: LanguageModelExpected, input: boolean) => e.type === 'text' || e.type === (input ? 'tool-response' : 'tool-call');
  const expected = [...(core.expectedInputs ?? []).map((e) => [e, true] as const), ...(core.expectedOutputs ?? []).map((e) => [e, false] as const)];
  for (const [e, input] of expected) {
    // Tool calls and results: create() checks that the engine has them when tools are given.
    if (!typeOk(e, input)) return 'unavailable';
    if (e.languages?.some((l) => !speaks(l))) return 'unavailable';
  }
  return base;
}

/** initialPrompts: a sequence of messages; an empty one is no messages. */
function initialMessages(value: unknown): CanonicalMessage[] {
  if (value === undefined) return [];
  if (typeof value !== 'object' || value === null || !(Symbol.iterator in value)) throw typeError('initialPrompts must be a sequence of messages');
  const list = [...(value as Iterable<unknown>)];
  return list.length ? canonicalizePrompt(list, false) : [];
}

function chatMessage(m: CanonicalMessage): ChatMessage {
  return { role: m.role, content: m.content };
}

interface CheckedConstraint {
  constraint: ResponseConstraint;
  /** Tell the model about the constraint in the prompt. */
  describe: boolean;
}

function checkConstraintOptions(options: Record<string, unknown>): CheckedConstraint | null {
  const constraint = canonicalizeConstraint(options.responseConstraint);
  const omit = options.omitResponseConstraintInput === undefined ? false : Boolean(options.omitResponseConstraintInput);
  if (omit && !constraint) throw typeError('omitResponseConstraintInput needs a responseConstraint');
  return constraint ? { constraint, describe: !omit } : null;
}

/** The turn's messages; with a constraint to describe, a user message stating it comes first. */
function turnMessages(messages: CanonicalMessage[], constraint: CheckedConstraint | null): ChatMessage[] {
  const chat = messages.map(chatMessage);
  if (!constraint?.describe) return chat;
  const c = constraint.constraint;
  const text = c.kind === 'json-schema' ? `Respond with JSON that follows this JSON schema: ${JSON.stringify(c.schema)}` : `Respond with text that matches this regular expression: ${String(c.regexp)}`;
  return [{ role: 'user', content: text }, ...chat];
}

/** responseConstraint as the engine's response_format (json_schema; a RegExp has no engine form yet). */
function engineResponseFormat(c: ResponseConstraint): Record<string, unknown> {
  if (c.kind === 'regexp') throw domError('NotSupportedError', 'A RegExp responseConstraint is not supported yet: the engine constrains output by JSON schema only.');
  return { type: 'json_schema', json_schema: { name: 'response', schema: c.schema, strict: true } };
}

async function countTokens(engine: PromptApiEngine, messages: ChatMessage[], ending: Ending, tools: readonly LanguageModelTool[]): Promise<number> {
  if (!messages.length) return 0;
  const request = {
    messages: messages as ChatCompletionMessageParam[],
    add_generation_prompt: ending === 'generate',
    continue_final_message: ending === 'continue',
    ...(tools.length ? { tools: engineTools(tools) } : {}),
  };
  return (await engine.tokenize(request)).count;
}

/**
 * An engine session for a new LanguageModel session, its context `messages` computed; null when
 * the engine has no sessions or has as many open as it allows (then reuse is left to the prefix
 * cache). Released again if `signal` aborts meanwhile.
 */
async function createEngineSession(engine: PromptApiEngine, messages: ChatMessage[], tools: readonly LanguageModelTool[], signal?: AbortSignal): Promise<string | null> {
  if (!engine.sessions) return null;
  const request = messages.length ? { messages: messages as ChatCompletionMessageParam[], add_generation_prompt: false, ...(tools.length ? { tools: engineTools(tools) } : {}) } : {};
  let id: string;
  try {
    id = (await engine.sessions.create(request, { signal })).id;
  } catch (e) {
    if (isSessionLimit(e) && !signal?.aborted) return null;
    throw engineError(e, signal);
  }
  if (signal?.aborted) {
    releaseEngineSession(engine, id);
    throw signal.reason;
  }
  return id;
}

/** The engine does not know the session (it expired, or went with a reload): ApiError code session_not_found. */
function isSessionGone(e: unknown): boolean {
  return (e as { code?: unknown } | null)?.code === 'session_not_found';
}

/** The engine refused a session because maxSessions are open (ApiError code too_many_sessions). */
function isSessionLimit(e: unknown): boolean {
  return (e as { code?: unknown } | null)?.code === 'too_many_sessions';
}

/** Releases an engine session (errors ignored: the engine may be gone already). */
function releaseEngineSession(engine: PromptApiEngine, id: string): void {
  engine.sessions?.destroy(id).catch(() => undefined);
}

/**
 * Computes the KV of `messages` (max_tokens 0), rendered as prompts will render them, in the
 * engine session if any; returns their tokens. Engine errors are thrown as they are.
 */
async function prefill(engine: PromptApiEngine, messages: ChatMessage[], tools: readonly LanguageModelTool[], signal?: AbortSignal, session?: string | null): Promise<number> {
  const request = {
    messages: messages as ChatCompletionMessageParam[], max_tokens: 0, add_generation_prompt: false,
    ...(tools.length ? { tools: engineTools(tools) } : {}), ...(session ? { session_id: session } : {}),
  };
  const r = await engine.chat.completions.create(request, { signal });
  return r.usage.prompt_tokens;
}

/**
 * Whether the engine reads tool calls out of replies: one that cannot force a call
 * (tool_choice 'required', asked here with max_tokens 0, so nothing is generated) has no
 * tool-call parsing either, and tools are a NotSupportedError.
 */
async function requireToolCalls(engine: PromptApiEngine, tools: readonly LanguageModelTool[], signal?: AbortSignal): Promise<void> {
  try {
    await engine.chat.completions.create({ messages: [{ role: 'user', content: '' }], tools: engineTools(tools), tool_choice: 'required', max_tokens: 0 }, { signal });
  } catch (e) {
    if (signal?.aborted) throw signal.reason;
    const api = e as { param?: unknown; message?: unknown };
    if (api.param === 'tool_choice' || api.param === 'tools' || (typeof api.param === 'string' && api.param.startsWith('tools['))) {
      throw domError('NotSupportedError', `tools are not supported by this engine: ${String(api.message)}`);
    }
    throw engineError(e, signal);
  }
}

/** An engine failure as the DOMException the spec's error table gives; an abort as its reason. */
function engineError(e: unknown, signal?: AbortSignal): unknown {
  if (signal?.aborted) return signal.reason;
  if (e instanceof DOMException || e instanceof TypeError || e instanceof RangeError) return e;
  const api = e as { param?: unknown; code?: unknown; message?: unknown };
  const message = typeof api.message === 'string' ? api.message : String(e);
  if (api.param === 'response_format') return domError('NotSupportedError', `responseConstraint is not supported by this engine: ${message}`);
  return domError('UnknownError', message);
}

/** downloadprogress events: loaded in steps of 1/65536, each above the last. */
function progressReporter(target: EventTarget): (fraction: number) => void {
  let last = -1;
  return (fraction) => {
    const loaded = Math.floor(Math.min(1, Math.max(0, fraction)) * 0x10000) / 0x10000;
    if (loaded <= last) return;
    last = loaded;
    target.dispatchEvent(new ProgressEventClass('downloadprogress', { lengthComputable: true, loaded, total: 1 }));
  };
}

/** `promise`, or the signal's reason as soon as it aborts. */
function raceAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      promise.catch(() => undefined);
      return;
    }
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
