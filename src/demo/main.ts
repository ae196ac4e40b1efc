// The demo page: load a model into the engine's Web Worker (the shipped model, a URL or a file),
// then run several agents at once, each streaming into its own panel, with live charts of what
// the engine does and its runtime stats. Agents run as workflows of two (metadata.workflow_id and
// agent_id, the workflow scheduling policy); a table shows each workflow and its agents' figures.
import { createWorkerEngine, type WorkerEngine } from '../browser/index.js';
import type { ChatCompletionMessageParam, InitProgressReport, WorkflowFigures } from '../engine/index.js';
import type { ModelSource } from '../model/index.js';
import { LiveChart } from './charts.js';
import { PromptPanel } from './prompt-panel.js';

const SHIPPED_MODEL = new URL('../../models/wg-tolstoy-q8_0.gguf', import.meta.url).href;
const OPENINGS = [
  'Prince Andrew looked at', 'The old count', 'Natasha ran into the drawing room', 'Pierre said',
  'The French army', 'Princess Mary', 'In the morning the regiment', 'Rostov rode up to',
  'Kutuzov was sitting', 'Moscow burned while', 'Denisov laughed and', 'At the ball',
  'Sonya did not know', 'The prince was angry', 'Anna Pavlovna', 'After the battle',
];
const TICK_MS = 500;
/** The Service Worker script (vite.config.ts defines it: sw.js in the built site). */
declare const __SERVICE_WORKER__: string;
/** Agents per workflow in the demo. */
const AGENTS_PER_WORKFLOW = 2;

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const status = $('status');

interface DemoState {
  engine: WorkerEngine | null;
  promptPanel: PromptPanel;
  running: AbortController | null;
  charts: Record<string, LiveChart>;
  agentsFinished: number;
  /** Runs of the agents so far (each run's workflows get new ids). */
  runs: number;
  /** Models loaded so far. */
  loads: number;
}

declare global {
  interface Window {
    demo: DemoState;
  }
}

const state: DemoState = { engine: null, promptPanel: new PromptPanel(), running: null, charts: {}, agentsFinished: 0, runs: 0, loads: 0 };
window.demo = state;

/**
 * Registers the Service Worker (workers/service-worker.ts) that answers /v1 for every tab of this
 * origin with `modelUrl`, so other tabs and OpenAI clients can use the model too. The built site
 * has it as sw.js beside this page; the dev server serves the source with Service-Worker-Allowed: /.
 */
async function registerServiceWorker(modelUrl: string, modelId?: string): Promise<void> {
  if (!('serviceWorker' in navigator)) return;
  const script = new URL(__SERVICE_WORKER__, location.href);
  script.searchParams.set('model', modelUrl);
  if (modelId) script.searchParams.set('id', modelId);
  try {
    await navigator.serviceWorker.register(script.href, { type: 'module', scope: __SERVICE_WORKER__.startsWith('/') ? '/' : './' });
  } catch (e) {
    console.warn(`wgserve: the Service Worker serving /v1 to other tabs was not registered: ${(e as Error).message}`);
  }
}

function worker(): Worker {
  return new Worker(new URL('../../workers/engine.worker.ts', import.meta.url), { type: 'module' });
}

/** The model and, for the shipped one, its name (the built site's file name carries a hash). */
function chosenModel(): { model: ModelSource; modelId?: string } {
  const source = document.querySelector<HTMLInputElement>('input[name=source]:checked')!.value;
  if (source === 'url') return { model: $<HTMLInputElement>('model-url').value };
  if (source === 'file') {
    const file = $<HTMLInputElement>('model-file').files?.[0];
    if (!file) throw new Error('choose a .gguf file first');
    return { model: file };
  }
  return { model: SHIPPED_MODEL, modelId: 'wg-tolstoy-q8_0' };
}

function showProgress(r: InitProgressReport): void {
  $<HTMLProgressElement>('progress').value = r.progress;
  status.textContent = r.text;
}

async function load(): Promise<void> {
  $<HTMLButtonElement>('start').disabled = true;
  try {
    const { model, modelId } = chosenModel();
    if (!state.engine) {
      state.engine = await createWorkerEngine({ worker: worker(), model, modelId, policy: 'workflow', initProgressCallback: showProgress });
    } else {
      state.engine.setInitProgressCallback(showProgress);
      await state.engine.reload(model, { modelId });
    }
    state.loads++;
    state.promptPanel.setEngine(state.engine);
    status.textContent = `Ready: ${state.engine.modelId}`;
    // Other tabs get the same model through the Service Worker (a file picked here cannot be passed to it).
    if (typeof model === 'string') await registerServiceWorker(model, modelId);
    $<HTMLButtonElement>('start').disabled = false;
  } catch (e) {
    status.textContent = `Could not load the model: ${(e as Error).message}`;
  }
}

/** One agent: two turns of a conversation, streamed into its panel. */
async function runAgent(engine: WorkerEngine, index: number, workflowId: string, panel: HTMLElement, signal: AbortSignal): Promise<void> {
  const out = panel.querySelector<HTMLElement>('.out')!;
  const meta = panel.querySelector<HTMLElement>('.meta')!;
  const maxTokens = Number($<HTMLInputElement>('max-tokens').value);
  const temperature = Number($<HTMLInputElement>('temperature').value);
  const messages: ChatCompletionMessageParam[] = [{ role: 'user', content: OPENINGS[index % OPENINGS.length] }];
  let tokens = 0;
  const started = performance.now();
  for (const turn of [1, 2]) {
    meta.textContent = `turn ${turn}`;
    const chunks = await engine.chat.completions.create(
      {
        messages, max_tokens: maxTokens, temperature, seed: index, stream: true, stream_options: { include_usage: true },
        metadata: { workflow_id: workflowId, agent_id: `agent ${index + 1}` },
      },
      { signal },
    );
    let reply = '';
    for await (const chunk of chunks) {
      const text = chunk.choices[0]?.delta.content ?? '';
      reply += text;
      out.textContent += text;
      if (chunk.usage) tokens += chunk.usage.completion_tokens;
    }
    messages.push({ role: 'assistant', content: reply }, { role: 'user', content: 'Go on.' });
    out.textContent += turn === 1 ? '\n— go on —\n' : '';
  }
  meta.textContent = `${tokens} tokens, ${((performance.now() - started) / 1000).toFixed(1)} s`;
}

async function runAgents(): Promise<void> {
  const engine = state.engine!;
  const count = Number($<HTMLInputElement>('agent-count').value);
  const grid = $('agents');
  grid.textContent = '';
  state.agentsFinished = 0;
  state.running = new AbortController();
  $<HTMLButtonElement>('start').disabled = true;
  $<HTMLButtonElement>('stop').disabled = false;
  const run = ++state.runs;
  const workflowOf = (i: number) => `run ${run} workflow ${Math.floor(i / AGENTS_PER_WORKFLOW) + 1}`;
  const runs = Array.from({ length: count }, (_, i) => {
    const panel = document.createElement('section');
    panel.className = 'agent';
    panel.innerHTML = `<h3>Agent ${i + 1} <span class="meta">waiting</span></h3><div class="out"></div>`;
    grid.append(panel);
    return runAgent(engine, i, workflowOf(i), panel, state.running!.signal)
      .catch((e: Error) => (panel.querySelector('.meta')!.textContent = e.message))
      .finally(() => state.agentsFinished++);
  });
  // A workflow ends when its agents are done: its kept KV is released and its completion time recorded.
  const workflows = new Map<string, Promise<unknown>[]>();
  runs.forEach((r, i) => workflows.set(workflowOf(i), [...(workflows.get(workflowOf(i)) ?? []), r]));
  await Promise.all([...workflows].map(async ([id, agents]) => {
    await Promise.all(agents);
    await engine.workflows.end(id).catch(() => false);
  }));
  state.running = null;
  $<HTMLButtonElement>('start').disabled = false;
  $<HTMLButtonElement>('stop').disabled = true;
}

function startCharts(): void {
  const box = $('charts');
  state.charts = {
    throughput: new LiveChart(box, 'generated tokens/s', [{ label: 'tokens/s', color: '#0969da' }]),
    batch: new LiveChart(box, 'running batch size', [{ label: 'sequences', color: '#8250df' }]),
    pages: new LiveChart(box, 'KV pages', [{ label: 'used', color: '#cf222e' }, { label: 'cached', color: '#0969da' }, { label: 'free', color: '#1a7f37' }]),
    prefix: new LiveChart(box, 'prefix cache hit rate (%)', [{ label: 'prompt tokens hit', color: '#1a7f37' }]),
    ttft: new LiveChart(box, 'time to first token (ms)', [{ label: 'latest', color: '#bf8700' }]),
  };
  let tick = 0;
  let last = { at: performance.now(), sampled: 0 };
  setInterval(async () => {
    if (!state.engine?.modelId) return;
    const m = await state.engine.metrics();
    const now = performance.now();
    const rate = ((m.sampledTokens - last.sampled) * 1000) / (now - last.at);
    last = { at: now, sampled: m.sampledTokens };
    tick++;
    state.charts.throughput.push(tick, [rate]);
    state.charts.batch.push(tick, [m.activeSequences]);
    state.charts.pages.push(tick, [m.pagesUsed, m.pagesCached, m.pagesFree]);
    state.charts.prefix.push(tick, [m.prefixCache.hitRate * 100]);
    state.charts.ttft.push(tick, [m.timeToFirstTokenMs.at(-1) ?? 0]);
    showWorkflows(m.workflows);
    $('stats').textContent = await state.engine.runtimeStatsText();
  }, TICK_MS);
}

/** One row per workflow (most recent first) and one per agent under it. */
function showWorkflows(workflows: WorkflowFigures[]): void {
  const ms = (sum: number, n: number) => (n ? (sum / n).toFixed(0) : '–');
  const cells = (name: string, f: WorkflowFigures | WorkflowFigures['agents'][number], done: string) =>
    `<td>${name}</td><td>${f.calls}</td><td>${f.promptTokens}</td><td>${f.cachedTokens}</td><td>${f.generatedTokens}</td>` +
    `<td>${ms(f.queueMsSum, f.calls)}</td><td>${ms(f.ttftMsSum, f.ttftCount)}</td><td>${ms(f.itlMsSum, f.itlCount)}</td>` +
    `<td>${f.preemptions}</td><td>${f.retainedPages}</td><td>${done}</td>`;
  const rows = [...workflows].reverse().flatMap((w) => [
    `<tr class="workflow">${cells(w.workflowId, w, w.completionMs === null ? 'open' : `${(w.completionMs / 1000).toFixed(1)} s`)}</tr>`,
    ...w.agents.map((a) => `<tr class="agent-row">${cells(`  ${a.agentId}`, a, '')}</tr>`),
  ]);
  $('workflows').innerHTML = '<tr><th>workflow / agent</th><th>calls</th><th>prompt</th><th>cached</th><th>generated</th>' +
    '<th>queue ms</th><th>TTFT ms</th><th>ITL ms</th><th>preempted</th><th>KV kept</th><th>completion</th></tr>' + rows.join('');
}

$('load').addEventListener('click', () => void load());
$('start').addEventListener('click', () => void runAgents());
$('stop').addEventListener('click', () => state.running?.abort());
startCharts();
void load();
