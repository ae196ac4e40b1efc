// The demo page: loads the shipped model in this tab and streams a continuation of the prompt.
import { ForwardPass, GpuRuntime, KvCache, Model, StreamingDecoder, generate } from '../index.js';

const MODEL_URL = new URL('../../models/wg-tolstoy-q8_0.gguf', import.meta.url).href;
const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const status = $('status');

async function start(): Promise<void> {
  const rt = await GpuRuntime.create();
  const model = await Model.load(rt, MODEL_URL, {
    onProgress: (p) => (status.textContent = `Loading model: ${(p.loadedBytes / 1024).toFixed(0)} KiB`),
  });
  const forward = new ForwardPass(model);
  const kv = KvCache.create(rt, model.config);
  status.textContent = `${model.config.name} on ${rt.gpu.adapter.description || rt.gpu.adapter.vendor}`;
  const button = $<HTMLButtonElement>('go');
  button.disabled = false;
  button.onclick = async () => {
    button.disabled = true;
    const out = $('out');
    const decoder = new StreamingDecoder(model.tokenizer);
    out.textContent = '';
    const promptIds = model.tokenizer.encode($<HTMLTextAreaElement>('prompt').value);
    const t0 = performance.now();
    const [result] = await generate(forward, kv, [{
      promptIds,
      maxTokens: 64,
      stopIds: model.tokenizer.eotIds,
      onToken: (id) => (out.textContent += decoder.push(id)),
    }], { contextLength: model.config.contextLength });
    out.textContent += decoder.flush();
    const s = (performance.now() - t0) / 1000;
    status.textContent = `${result.tokens.length} tokens in ${s.toFixed(2)} s`;
    button.disabled = false;
  };
}

start().catch((e: Error) => (status.textContent = `Error: ${e.message}`));
