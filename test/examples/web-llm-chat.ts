// web-llm's get-started usage (its README's "Create MLCEngine" and "Streaming" sections),
// written against @mlc-ai/web-llm. test/gpu/web-llm-example.test.ts runs it with the import
// changed to wgserve and the model id changed to a GGUF file; nothing else changes.
import * as webllm from '@mlc-ai/web-llm';

export const selectedModel = 'Llama-3.1-8B-Instruct-q4f32_1-MLC';

export async function main(): Promise<void> {
  const initProgressCallback = (report: webllm.InitProgressReport) => {
    console.log('init:', report.text);
  };
  const engine: webllm.MLCEngineInterface = await webllm.CreateMLCEngine(selectedModel, { initProgressCallback });

  const messages: webllm.ChatCompletionMessageParam[] = [
    { role: 'system', content: 'You are a helpful AI assistant.' },
    { role: 'user', content: 'Prince Andrew looked at' },
  ];
  const reply = await engine.chat.completions.create({ messages, temperature: 0, max_tokens: 16 });
  console.log('reply:', reply.choices[0].message.content);
  console.log('usage:', reply.usage?.completion_tokens);

  const chunks = await engine.chat.completions.create({
    messages,
    temperature: 0,
    max_tokens: 16,
    stream: true,
    stream_options: { include_usage: true },
  });
  let streamed = '';
  for await (const chunk of chunks) {
    streamed += chunk.choices[0]?.delta.content || '';
    if (chunk.usage) console.log('stream usage:', chunk.usage.completion_tokens);
  }
  console.log('streamed:', streamed);
  console.log('message:', await engine.getMessage());
  console.log('stats:', await engine.runtimeStatsText());
  await engine.unload();
}
