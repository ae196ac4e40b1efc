// The session's tool loop, over the engine's OpenAI tool calls: `tools` go to the engine as
// functions; a reply that ends with finish_reason 'tool_calls' has its calls executed (all at
// once, as the explainer's Promise.all), and the assistant's calls and the tools' results join
// the turn before the model goes on.
import type { ChatCompletionChunk, ChatCompletionMessageToolCall, ChatCompletionTool } from '../engine/protocol.js';
import { domError } from './errors.js';
import type { LanguageModelTool } from './types.js';

export type ChatMessage =
  | { role: 'system' | 'user'; content: string }
  | { role: 'assistant'; content: string | null; tool_calls?: ChatCompletionMessageToolCall[] }
  | { role: 'tool'; content: string; tool_call_id: string };

/** Most rounds of tool calls in one prompt before it gives up. */
export const MAX_TOOL_ROUNDS = 8;

export function engineTools(tools: readonly LanguageModelTool[]): ChatCompletionTool[] {
  return tools.map((t) => ({ type: 'function', function: { name: t.name, description: t.description, parameters: t.inputSchema as Record<string, unknown> } }));
}

/** One streamed reply: its text (each piece also to onText), its tool calls, and why it ended. */
export interface StreamedReply {
  text: string;
  calls: ChatCompletionMessageToolCall[];
  finish: string | null;
}

type ToolCallDelta = { index?: number; id?: string; function?: { name?: string; arguments?: string } };

export async function readReply(stream: AsyncIterable<ChatCompletionChunk>, onText?: (text: string) => void): Promise<StreamedReply> {
  const reply: StreamedReply = { text: '', calls: [], finish: null };
  for await (const chunk of stream) {
    const choice = chunk.choices[0];
    if (!choice) continue;
    const delta = choice.delta as { content?: string | null; tool_calls?: ToolCallDelta[] };
    if (delta.content) {
      reply.text += delta.content;
      onText?.(delta.content);
    }
    for (const part of delta.tool_calls ?? []) {
      const at = part.index ?? reply.calls.length;
      const call = (reply.calls[at] ??= { id: '', type: 'function', function: { name: '', arguments: '' } });
      if (part.id) call.id = part.id;
      if (part.function?.name) call.function.name += part.function.name;
      if (part.function?.arguments) call.function.arguments += part.function.arguments;
    }
    reply.finish = choice.finish_reason ?? reply.finish;
  }
  return reply;
}

/**
 * Runs every call (together) and returns the tool messages with their results. A call of an
 * unknown tool or with arguments that are not JSON gets an error text the model can read; an
 * exception thrown by execute() rejects the prompt with it.
 */
export async function executeCalls(calls: readonly ChatCompletionMessageToolCall[], tools: readonly LanguageModelTool[]): Promise<ChatMessage[]> {
  const results = await Promise.all(calls.map(async (call) => {
    const tool = tools.find((t) => t.name === call.function.name);
    if (!tool) return `Error: there is no tool named "${call.function.name}".`;
    let args: unknown;
    try {
      args = call.function.arguments.trim() ? JSON.parse(call.function.arguments) : {};
    } catch {
      return `Error: the arguments of ${tool.name} are not JSON: ${call.function.arguments}`;
    }
    return String(await tool.execute(args));
  }));
  return calls.map((call, i) => ({ role: 'tool', tool_call_id: call.id, content: results[i] }));
}

export function tooManyRounds(): DOMException {
  return domError('UnknownError', `The model called tools ${MAX_TOOL_ROUNDS} times in a row without answering.`);
}
