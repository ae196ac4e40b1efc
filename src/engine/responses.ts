// Turns the event streams of a request's sequences into OpenAI responses: whole ones
// (chat.completion, text_completion) or chunk streams, with usage and logprobs.
import type { RowLogprobs, Tokenizer } from '../model/index.js';
import { AsyncQueue } from './async-queue.js';
import type { SeqEvent, SeqFinishReason, SeqHandle, SeqTimings } from './engine-core.js';
import { ApiError } from './errors.js';
import type {
  ChatCompletion, ChatCompletionChunk, ChatCompletionTokenLogprob, Completion, CompletionLogprobs, CompletionUsage, TopLogprob,
} from './protocol.js';
import type { ParsedRequest } from './request.js';
import { parseToolOutput, ToolCallStream } from './tools/index.js';

export interface ChoiceRun {
  /** Choice index in the response (prompt index * n + choice). */
  index: number;
  promptIndex: number;
  handle: SeqHandle;
}

export interface ResponseMeta {
  id: string;
  created: number;
  model: string;
  fingerprint: string;
  tokenizer: Tokenizer;
  /** Called once when the response is complete (with its choices) or abandoned. */
  done(choices?: CollectedChoice[]): void;
}

export interface CollectedChoice {
  index: number;
  promptIndex: number;
  text: string;
  tokens: number[];
  logprobs: RowLogprobs[];
  finishReason: SeqFinishReason;
  timings: SeqTimings;
}

/** Reads every choice to its end (all are generated at once, batched). */
export async function collectChoices(runs: ChoiceRun[]): Promise<CollectedChoice[]> {
  const choices = runs.map((r): CollectedChoice => ({
    index: r.index, promptIndex: r.promptIndex, text: '', tokens: [], logprobs: [], finishReason: 'abort', timings: r.handle.timings,
  }));
  for await (const { run, event } of merge(runs)) {
    const c = choices[runs.indexOf(run)];
    if (event.type === 'token') {
      c.text += event.text;
      c.tokens.push(event.tokenId);
      if (event.logprobs) c.logprobs.push(event.logprobs);
    } else {
      c.text += event.text;
      c.finishReason = event.reason;
    }
  }
  return choices;
}

export function chatCompletion(choices: CollectedChoice[], parsed: ParsedRequest, meta: ResponseMeta): ChatCompletion {
  meta.done(choices);
  return {
    id: `chatcmpl-${meta.id}`,
    object: 'chat.completion',
    created: meta.created,
    model: meta.model,
    system_fingerprint: meta.fingerprint,
    choices: choices.map((c) => ({
      index: c.index,
      ...chatMessage(c, parsed),
      logprobs: parsed.wantsLogprobs ? { content: c.logprobs.map((l, i) => tokenLogprob(meta.tokenizer, c.tokens[i], l)), refusal: null } : null,
    })),
    usage: usage(choices, parsed),
  };
}

/** The message and finish reason of a whole choice: its tool calls read out when the request has tools. */
function chatMessage(c: CollectedChoice, parsed: ParsedRequest): Pick<ChatCompletion['choices'][number], 'message' | 'finish_reason'> {
  const plain = { message: { role: 'assistant' as const, content: c.text, refusal: null }, finish_reason: c.finishReason };
  if (!parsed.toolCalls || c.finishReason !== 'stop') return plain;
  const { content, calls } = parseToolOutput(parsed.toolCalls.format, c.text, true);
  if (!calls.length) return plain;
  const toolCalls = calls.map((call) => ({ id: toolCallId(), type: 'function' as const, function: { name: call.name, arguments: call.arguments } }));
  return { message: { role: 'assistant', content: content.trim() || null, refusal: null, tool_calls: toolCalls }, finish_reason: 'tool_calls' };
}

export function toolCallId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(12));
  return `call_${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}

export function textCompletion(choices: CollectedChoice[], parsed: ParsedRequest, meta: ResponseMeta): Completion {
  meta.done(choices);
  return {
    id: `cmpl-${meta.id}`,
    object: 'text_completion',
    created: meta.created,
    model: meta.model,
    system_fingerprint: meta.fingerprint,
    choices: choices.map((c) => {
      const echo = parsed.echo ? parsed.promptTexts[c.promptIndex] : '';
      return {
        index: c.index,
        text: echo + c.text,
        finish_reason: c.finishReason,
        logprobs: parsed.wantsLogprobs ? completionLogprobs(meta.tokenizer, c.tokens, c.logprobs, echo.length) : null,
      };
    }),
    usage: usage(choices, parsed),
  };
}

export async function* chatChunks(runs: ChoiceRun[], parsed: ParsedRequest, meta: ResponseMeta): AsyncGenerator<ChatCompletionChunk> {
  const chunk = (choices: ChatCompletionChunk['choices']): ChatCompletionChunk => ({
    id: `chatcmpl-${meta.id}`, object: 'chat.completion.chunk', created: meta.created, model: meta.model, system_fingerprint: meta.fingerprint, choices,
  });
  const collected = new Map<ChoiceRun, CollectedChoice>();
  const format = parsed.toolCalls?.format;
  const toolStreams = new Map<ChoiceRun, ToolCallStream>();
  /** The deltas of a piece of text: as is, or split into content and tool-call deltas. */
  const deltas = (run: ChoiceRun, text: string, final: boolean): ChatCompletionChunk['choices'][number]['delta'][] => {
    if (!format) return text ? [{ content: text }] : [];
    let stream = toolStreams.get(run);
    if (!stream) toolStreams.set(run, (stream = new ToolCallStream(format, toolCallId)));
    const { content, calls } = stream.push(text, final);
    return [...(content ? [{ content }] : []), ...calls.map((call) => ({ tool_calls: [call] }))];
  };
  try {
    for (const run of runs) yield chunk([{ index: run.index, delta: { role: 'assistant', content: '' }, finish_reason: null, logprobs: null }]);
    for await (const { run, event } of merge(runs)) {
      const c = track(collected, run, event);
      if (event.type === 'token') {
        const logprobs = event.logprobs ? { content: [tokenLogprob(meta.tokenizer, event.tokenId, event.logprobs)], refusal: null } : null;
        const pieces = deltas(run, event.text, false);
        if (!pieces.length && logprobs) pieces.push({ content: '' });
        for (const [i, delta] of pieces.entries()) yield chunk([{ index: run.index, delta, finish_reason: null, logprobs: i === 0 ? logprobs : null }]);
      } else {
        for (const delta of deltas(run, event.text, c.finishReason === 'stop')) yield chunk([{ index: run.index, delta, finish_reason: null, logprobs: null }]);
        const called = (toolStreams.get(run)?.ids.length ?? 0) > 0 && c.finishReason === 'stop';
        yield chunk([{ index: run.index, delta: {}, finish_reason: called ? 'tool_calls' : c.finishReason, logprobs: null }]);
      }
    }
    if (parsed.includeUsage) yield { ...chunk([]), usage: usage([...collected.values()], parsed) };
  } finally {
    meta.done([...collected.values()].sort((a, b) => a.index - b.index));
  }
}

export async function* completionChunks(runs: ChoiceRun[], parsed: ParsedRequest, meta: ResponseMeta): AsyncGenerator<Completion> {
  const chunk = (choices: Completion['choices']): Completion => ({
    id: `cmpl-${meta.id}`, object: 'text_completion', created: meta.created, model: meta.model, system_fingerprint: meta.fingerprint, choices,
  });
  const collected = new Map<ChoiceRun, CollectedChoice>();
  try {
    if (parsed.echo) {
      for (const run of runs) yield chunk([{ index: run.index, text: parsed.promptTexts[run.promptIndex], finish_reason: null, logprobs: null }]);
    }
    for await (const { run, event } of merge(runs)) {
      const c = track(collected, run, event);
      if (event.type === 'token') {
        const logprobs = event.logprobs ? completionLogprobs(meta.tokenizer, [event.tokenId], [event.logprobs], c.text.length - event.text.length) : null;
        if (event.text || logprobs) yield chunk([{ index: run.index, text: event.text, finish_reason: null, logprobs }]);
      } else {
        yield chunk([{ index: run.index, text: event.text, finish_reason: c.finishReason, logprobs: null }]);
      }
    }
    if (parsed.includeUsage) yield { ...chunk([]), usage: usage([...collected.values()], parsed) };
  } finally {
    meta.done([...collected.values()].sort((a, b) => a.index - b.index));
  }
}

/** Updates the running totals of a streamed choice. */
function track(collected: Map<ChoiceRun, CollectedChoice>, run: ChoiceRun, event: SeqEvent): CollectedChoice {
  let c = collected.get(run);
  if (!c) {
    c = { index: run.index, promptIndex: run.promptIndex, text: '', tokens: [], logprobs: [], finishReason: 'abort', timings: run.handle.timings };
    collected.set(run, c);
  }
  c.text += event.text;
  if (event.type === 'token') c.tokens.push(event.tokenId);
  else c.finishReason = event.reason;
  return c;
}

/**
 * The events of several sequences as one stream, in the order they arrive. Stopping early
 * (break in for await) aborts every sequence; an engine failure ends the stream with an ApiError.
 */
function merge(runs: ChoiceRun[]): AsyncIterable<{ run: ChoiceRun; event: SeqEvent }> {
  const out = new AsyncQueue<{ run: ChoiceRun; event: SeqEvent }>(() => runs.forEach((r) => r.handle.abort()));
  let open = runs.length;
  if (!open) out.close();
  for (const run of runs) {
    void (async () => {
      try {
        for await (const event of run.handle.events) out.push({ run, event });
        if (--open === 0) out.close();
      } catch (e) {
        runs.forEach((r) => r.handle.abort());
        out.fail(ApiError.from(e));
      }
    })();
  }
  return out;
}

function usage(choices: CollectedChoice[], parsed: ParsedRequest): CompletionUsage {
  const prompt = parsed.prompts.reduce((sum, ids) => sum + ids.length, 0);
  const completion = choices.reduce((sum, c) => sum + c.tokens.length, 0);
  const t = choices.map((c) => c.timings);
  const arrived = Math.min(...t.map((x) => x.arrivedAt));
  const firstToken = Math.min(...t.map((x) => x.firstTokenAt || Infinity));
  const finished = Math.max(...t.map((x) => x.finishedAt || x.arrivedAt));
  const ttft = Number.isFinite(firstToken) ? (firstToken - arrived) / 1000 : 0;
  const decodeSeconds = Number.isFinite(firstToken) ? (finished - firstToken) / 1000 : 0;
  const decoded = Math.max(0, completion - choices.length);
  return {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
    prompt_tokens_details: { cached_tokens: cachedTokens(choices) },
    extra: {
      e2e_latency_s: (finished - arrived) / 1000,
      prefill_tokens_per_s: ttft > 0 ? prompt / ttft : 0,
      decode_tokens_per_s: decodeSeconds > 0 ? decoded / decodeSeconds : 0,
      time_to_first_token_s: ttft,
      time_per_output_token_s: decoded > 0 ? decodeSeconds / decoded : 0,
    },
  };
}

/** Cached prompt tokens, counted once per prompt like prompt_tokens: those of each prompt's first choice. */
function cachedTokens(choices: CollectedChoice[]): number {
  const firstOfPrompt = new Map<number, CollectedChoice>();
  for (const c of choices) {
    const seen = firstOfPrompt.get(c.promptIndex);
    if (!seen || c.index < seen.index) firstOfPrompt.set(c.promptIndex, c);
  }
  return [...firstOfPrompt.values()].reduce((sum, c) => sum + c.timings.cachedTokens, 0);
}

function topLogprob(tok: Tokenizer, id: number, logprob: number): TopLogprob {
  return { token: tok.tokenToPiece(id), bytes: Array.from(tok.tokenToBytes(id)), logprob };
}

function tokenLogprob(tok: Tokenizer, id: number, l: RowLogprobs): ChatCompletionTokenLogprob {
  return { ...topLogprob(tok, id, l.logprob), top_logprobs: l.top.map((t) => topLogprob(tok, t.id, t.logprob)) };
}

function completionLogprobs(tok: Tokenizer, ids: number[], logprobs: RowLogprobs[], offset: number): CompletionLogprobs {
  const content = logprobs.map((l, i) => tokenLogprob(tok, ids[i], l));
  const textOffset: number[] = [];
  let at = offset;
  for (const c of content) {
    textOffset.push(at);
    at += c.token.length;
  }
  return {
    content,
    refusal: null,
    tokens: content.map((c) => c.token),
    token_logprobs: content.map((c) => c.logprob),
    top_logprobs: content.map((c) => Object.fromEntries(c.top_logprobs.map((t) => [t.token, t.logprob]))),
    text_offset: textOffset,
  };
}
