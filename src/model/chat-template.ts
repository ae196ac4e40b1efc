// Chat templates: the Jinja template in tokenizer.chat_template, rendered with
// @huggingface/jinja for a list of messages, as llama.cpp's common chat code renders it.

import { Template } from '@huggingface/jinja';

export interface ChatMessage {
  role: string;
  content: string | null;
  /** Anything else a template may read: name, tool_calls, tool_call_id, ... */
  [field: string]: unknown;
}

export interface RenderChatOptions {
  /** End with the header of an assistant turn, for the model to write it. */
  addGenerationPrompt: boolean;
  /** Text of the BOS / EOS tokens (`bos_token`, `eos_token` in the template); '' if none. */
  bosToken: string;
  eosToken: string;
  /** Tool (function) definitions, passed to the template as `tools`. */
  tools?: readonly unknown[];
  /**
   * What to do when `template` is undefined. 'error' (default) throws; 'chatml' uses ChatML, which
   * is what llama.cpp's server and CLI fall back to for a model without a template.
   */
  fallback?: 'error' | 'chatml';
  /** Extra template variables (llama.cpp's chat_template_kwargs, e.g. enable_thinking). */
  variables?: Readonly<Record<string, unknown>>;
}

/** llama.cpp's CHATML_TEMPLATE_SRC (common/chat.cpp). */
export const CHATML_TEMPLATE = [
  '{%- for message in messages -%}',
  "  {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' -}}",
  '{%- endfor -%}',
  '{%- if add_generation_prompt -%}',
  "  {{- '<|im_start|>assistant\\n' -}}",
  '{%- endif -%}',
].join('\n');

export class ChatTemplateError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ChatTemplateError';
  }
}

const parsedTemplates = new Map<string, Template>();

export function renderChat(
  template: string | undefined,
  messages: readonly ChatMessage[],
  options: RenderChatOptions,
): string {
  const source = template ?? fallbackTemplate(options.fallback ?? 'error');
  const parsed = parse(source);
  const context: Record<string, unknown> = {
    ...options.variables,
    messages,
    add_generation_prompt: options.addGenerationPrompt,
    bos_token: options.bosToken,
    eos_token: options.eosToken,
    // none, not undefined: templates test `tools is not none`
    tools: options.tools ?? null,
  };
  try {
    return parsed.render(context);
  } catch (e) {
    // Also what a template's raise_exception('...') becomes: its message is the reason.
    throw new ChatTemplateError(`the chat template failed on these messages: ${(e as Error).message}`, { cause: e });
  }
}

function fallbackTemplate(fallback: 'error' | 'chatml'): string {
  if (fallback === 'chatml') return CHATML_TEMPLATE;
  throw new ChatTemplateError(
    "the model has no chat template (tokenizer.chat_template is missing): pass one, or fallback: 'chatml' " +
      "to use ChatML as llama.cpp's server does",
  );
}

function parse(source: string): Template {
  let parsed = parsedTemplates.get(source);
  if (!parsed) {
    try {
      parsed = new Template(source);
    } catch (e) {
      throw new ChatTemplateError(`the chat template does not parse: ${(e as Error).message}`, { cause: e });
    }
    parsedTemplates.set(source, parsed);
  }
  return parsed;
}
