// Test page: a tab of the origin using the Service Worker's OpenAI API, with fetch and with the
// official `openai` client (test/e2e/service-worker.test.ts drives it through Playwright).
import OpenAI from 'openai';

interface Streamed {
  text: string;
  finishReason: string | null;
  /** performance.timeOrigin + now of the first and last content chunk, to see overlap across tabs. */
  firstAt: number;
  lastAt: number;
}

declare global {
  interface Window {
    sw: {
      register(): Promise<void>;
      models(): Promise<unknown>;
      chat(content: string, maxTokens: number): Promise<{ status: number; started: string | null; body: { choices?: { message: { content: string } }[]; error?: unknown } }>;
      stream(content: string, maxTokens: number, loseDeviceAfter?: number): Promise<Streamed & { deviceLost: boolean }>;
      openai(content: string, maxTokens: number): Promise<{ text: string; streamed: string; models: string[] }>;
    };
  }
}

const now = () => performance.timeOrigin + performance.now();
const chatBody = (content: string, maxTokens: number, stream = false) =>
  JSON.stringify({ messages: [{ role: 'user', content }], temperature: 0, max_tokens: maxTokens, stream });

window.sw = {
  async register() {
    await // The default model is the shipped one; '?model=URL' on the script URL picks another.
    await navigator.serviceWorker.register('/workers/service-worker.ts', { type: 'module', scope: '/' });
    await navigator.serviceWorker.ready;
    if (!navigator.serviceWorker.controller) {
      await new Promise((resolve) => navigator.serviceWorker.addEventListener('controllerchange', resolve, { once: true }));
    }
    document.getElementById('status')!.textContent = 'controlled';
  },
  async models() {
    return (await fetch('/v1/models')).json();
  },
  async chat(content, maxTokens) {
    const r = await fetch('/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: chatBody(content, maxTokens) });
    return { status: r.status, started: r.headers.get('x-wgserve-engine-started'), body: await r.json() };
  },
  /** With loseDeviceAfter, the Service Worker's GPU device is destroyed after that many content chunks. */
  async stream(content, maxTokens, loseDeviceAfter) {
    const r = await fetch('/v1/chat/completions', { method: 'POST', headers: { 'content-type': 'application/json' }, body: chatBody(content, maxTokens, true) });
    const out = { text: '', finishReason: null as string | null, firstAt: 0, lastAt: 0, deviceLost: false };
    let contentChunks = 0;
    let lost: Promise<boolean> | null = null;
    const reader = r.body!.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const event = buffer.slice(0, end).replace(/^data: /, '');
        buffer = buffer.slice(end + 2);
        if (event === '[DONE]') continue;
        const chunk = JSON.parse(event) as { choices: { delta: { content?: string }; finish_reason: string | null }[] };
        const text = chunk.choices[0]?.delta.content;
        if (text) {
          out.firstAt ||= now();
          out.lastAt = now();
          out.text += text;
          if (++contentChunks === loseDeviceAfter) lost = loseDevice();
        }
        out.finishReason = chunk.choices[0]?.finish_reason ?? out.finishReason;
      }
    }
    out.deviceLost = (await lost) ?? false;
    return out;
  },
  async openai(content, maxTokens) {
    const client = new OpenAI({ baseURL: `${location.origin}/v1`, apiKey: 'none', dangerouslyAllowBrowser: true });
    const messages = [{ role: 'user' as const, content }];
    const whole = await client.chat.completions.create({ model: 'wg-tolstoy-q8_0', messages, temperature: 0, max_tokens: maxTokens });
    const stream = await client.chat.completions.create({ model: 'wg-tolstoy-q8_0', messages, temperature: 0, max_tokens: maxTokens, stream: true });
    let streamed = '';
    for await (const chunk of stream) streamed += chunk.choices[0]?.delta.content ?? '';
    const models = (await client.models.list()).data.map((m) => m.id);
    return { text: whole.choices[0].message.content ?? '', streamed, models };
  },
};

/** Asks the Service Worker to destroy its engine's GPU device (its test-only message). */
function loseDevice(): Promise<boolean> {
  const channel = new MessageChannel();
  const reply = new Promise<boolean>((resolve) => (channel.port1.onmessage = (e) => resolve(e.data as boolean)));
  navigator.serviceWorker.controller!.postMessage({ type: 'wgserve:lose-device-for-testing' }, [channel.port2]);
  return reply;
}
