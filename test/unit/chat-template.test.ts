// Chat templates of the test models rendered with @huggingface/jinja, and the error cases.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Metadata, parseGgufHeader } from '../../src/model/gguf.js';
import { CHATML_TEMPLATE, ChatTemplateError, renderChat, type ChatMessage } from '../../src/model/chat-template.js';
import { modelPath } from '../helpers/shared.js';

function templateOf(file: string): string {
  const bytes = new Uint8Array(readFileSync(modelPath(file)));
  return new Metadata(parseGgufHeader(bytes, file, bytes.byteLength).metadata, file).string('tokenizer.chat_template');
}

const CONVERSATION: ChatMessage[] = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: ' Hi ' },
  { role: 'assistant', content: 'Hello.' },
  { role: 'user', content: 'Colors?' },
];

describe('templates of the test models', () => {
  it('Llama 2 [INST]: system folded into the first user turn (strip() trims only the ends), BOS before each, EOS after answers', () => {
    const prompt = renderChat(templateOf('wg-llama-spm-f32.gguf'), CONVERSATION, {
      addGenerationPrompt: true, bosToken: '<s>', eosToken: '</s>',
    });
    expect(prompt).toBe('<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n Hi [/INST] Hello. </s><s>[INST] Colors? [/INST]');
  });

  it('Llama 3: headers per turn, trimmed content, generation prompt only when asked', () => {
    const template = templateOf('wg-llama3-bpe-q8_0.gguf');
    const opts = { bosToken: '<|begin_of_text|>', eosToken: '<|eot_id|>' };
    const turns =
      '<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>' +
      '<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>' +
      '<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>' +
      '<|start_header_id|>user<|end_header_id|>\n\nColors?<|eot_id|>';
    expect(renderChat(template, CONVERSATION, { ...opts, addGenerationPrompt: false })).toBe(turns);
    expect(renderChat(template, CONVERSATION, { ...opts, addGenerationPrompt: true })).toBe(
      `${turns}<|start_header_id|>assistant<|end_header_id|>\n\n`,
    );
  });

  it('wg-tolstoy: messages joined by blank lines', () => {
    const prompt = renderChat(templateOf('wg-tolstoy-q8_0.gguf'), CONVERSATION, {
      addGenerationPrompt: true, bosToken: '<s>', eosToken: '</s>',
    });
    expect(prompt).toBe('Be brief.\n\n Hi \n\nHello.\n\nColors?\n\n');
  });
});

describe('template variables', () => {
  const opts = { addGenerationPrompt: false, bosToken: '', eosToken: '' };

  it('tools is none when not given, and the list when given', () => {
    const template = '{% if tools is not none %}{{ tools | length }} tools: {{ tools[0].function.name }}{% else %}no tools{% endif %}';
    expect(renderChat(template, [], opts)).toBe('no tools');
    const tools = [{ type: 'function', function: { name: 'get_weather' } }];
    expect(renderChat(template, [], { ...opts, tools })).toBe('1 tools: get_weather');
  });

  it('messages keep their extra fields, and extra variables reach the template', () => {
    const template = '{% for m in messages %}{{ m.role }}:{{ m.name }}{% endfor %}/{{ enable_thinking }}';
    const messages: ChatMessage[] = [{ role: 'tool', content: '42', name: 'calc' }];
    expect(renderChat(template, messages, { ...opts, variables: { enable_thinking: false } })).toBe('tool:calc/false');
  });
});

describe('errors', () => {
  const opts = { addGenerationPrompt: true, bosToken: '<s>', eosToken: '</s>' };

  it('raise_exception in a template becomes a ChatTemplateError carrying its message', () => {
    const template =
      "{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% endfor %}";
    expect(() => renderChat(template, CONVERSATION, opts)).toThrow(ChatTemplateError);
    expect(() => renderChat(template, CONVERSATION, opts)).toThrow(/System role not supported/);
  });

  it('a template that does not parse says so', () => {
    expect(() => renderChat('{% for m in messages %}', [], opts)).toThrow(/chat template does not parse/);
  });

  it('no template and no fallback: a clear error; ChatML on request', () => {
    expect(() => renderChat(undefined, CONVERSATION, opts)).toThrow(/model has no chat template/);
    expect(renderChat(undefined, CONVERSATION.slice(1, 2), { ...opts, fallback: 'chatml' })).toBe(
      '<|im_start|>user\n Hi <|im_end|>\n<|im_start|>assistant\n',
    );
    expect(CHATML_TEMPLATE).toContain('<|im_start|>');
  });
});
