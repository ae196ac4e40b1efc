// The demo's Prompt API panel: one LanguageModel session given a context, cloned several times,
// the clones streaming their replies side by side (on the demo's engine, batched together). The
// status line shows from the engine's metrics what cloning cost (no step, no page: the clones
// share the base session's pinned pages) and how much of the clones' prompts came from them.
import type { WorkerEngine } from '../browser/index.js';
import type { EngineMetricsSnapshot } from '../engine/index.js';
import { createLanguageModel, type LanguageModelClass, type LanguageModelSamplingMode, type LanguageModelSession } from '../prompt-api/index.js';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

/** What the last run cost the engine, from its metrics before cloning, after it, and after the replies. */
export interface PromptPanelCost {
  /** Tokens of the base session's context (what every clone shares). */
  contextTokens: number;
  /** Engine steps and KV pages cloning took (0 and 0: no prefill, pages shared). */
  cloneSteps: number;
  clonePages: number;
  /** Prompt tokens of the clones' requests, and how many came from their sessions (not computed). */
  promptTokens: number;
  cachedPromptTokens: number;
  /** Most clones streaming at once: every clone had started before any finished when this is the clone count. */
  streamingAtOnce: number;
}

export interface PromptPanelState {
  /** Sessions of the last run finished (tests wait for it). */
  finished: number;
  texts: string[];
  /** Chunks each clone's stream delivered. */
  chunks: number[];
  /** Set once the last run's replies are all in. */
  cost: PromptPanelCost | null;
}

export class PromptPanel {
  readonly state: PromptPanelState = { finished: 0, texts: [], chunks: [], cost: null };
  private engine: WorkerEngine | null = null;
  private streaming = 0;
  private streamingAtOnce = 0;

  constructor() {
    $('pa-start').addEventListener('click', () => void this.run());
  }

  /** A newly loaded engine: sessions run on it from now on. */
  setEngine(engine: WorkerEngine): void {
    this.engine = engine;
    $<HTMLButtonElement>('pa-start').disabled = false;
  }

  private async run(): Promise<void> {
    const engine = this.engine!;
    // The agents' "tokens each" bounds each reply here too.
    const LanguageModel: LanguageModelClass = createLanguageModel({ engine, maxResponseTokens: Number($<HTMLInputElement>('max-tokens').value) });
    const button = $<HTMLButtonElement>('pa-start');
    const grid = $('pa-sessions');
    const status = $('pa-status');
    const clones = Math.max(1, Math.min(8, Number($<HTMLInputElement>('pa-clones').value)));
    const openings = $<HTMLInputElement>('pa-prompts').value.split('|').map((s) => s.trim()).filter(Boolean);
    const samplingMode = $<HTMLSelectElement>('pa-sampling').value as LanguageModelSamplingMode;
    button.disabled = true;
    grid.textContent = '';
    Object.assign(this.state, { finished: 0, texts: [], chunks: [], cost: null });
    this.streaming = this.streamingAtOnce = 0;
    try {
      const base = await LanguageModel.create({ samplingMode, initialPrompts: [{ role: 'user', content: $<HTMLInputElement>('pa-context').value }] });
      status.textContent = `base session: ${base.contextUsage} of ${base.contextWindow} tokens; cloning ${clones}`;
      const beforeClones = await engine.metrics();
      const sessions = await Promise.all(Array.from({ length: clones }, () => base.clone()));
      const afterClones = await engine.metrics();
      await Promise.all(sessions.map((s, i) => this.stream(s, i, openings[i % openings.length] ?? 'Go on.', grid)));
      base.destroy();
      const cost = costOf(base.contextUsage, beforeClones, afterClones, await engine.metrics(), this.streamingAtOnce);
      this.state.cost = cost;
      status.textContent = describeCost(clones, cost);
    } catch (e) {
      status.textContent = (e as Error).message;
    } finally {
      button.disabled = false;
    }
  }

  private async stream(session: LanguageModelSession, index: number, prompt: string, grid: HTMLElement): Promise<void> {
    const panel = document.createElement('section');
    panel.className = 'agent';
    panel.innerHTML = '<h3><span class="title"></span> <span class="meta">streaming</span></h3><div class="out"></div>';
    panel.querySelector('.title')!.textContent = `Clone ${index + 1}: ${prompt}`;
    grid.append(panel);
    const out = panel.querySelector<HTMLElement>('.out')!;
    let text = '';
    let started = false;
    this.state.chunks[index] = 0;
    try {
      for await (const chunk of session.promptStreaming(prompt) as unknown as AsyncIterable<string>) {
        if (!started) {
          started = true;
          this.streamingAtOnce = Math.max(this.streamingAtOnce, ++this.streaming);
        }
        this.state.chunks[index]++;
        text += chunk;
        out.textContent = text;
      }
      panel.querySelector('.meta')!.textContent = `${session.contextUsage} / ${session.contextWindow} tokens`;
    } catch (e) {
      panel.querySelector('.meta')!.textContent = (e as Error).message;
    } finally {
      if (started) this.streaming--;
      this.state.texts[index] = text;
      this.state.finished++;
      session.destroy();
    }
  }
}

function costOf(contextTokens: number, before: EngineMetricsSnapshot, cloned: EngineMetricsSnapshot, after: EngineMetricsSnapshot, streamingAtOnce: number): PromptPanelCost {
  return {
    contextTokens,
    cloneSteps: cloned.steps - before.steps,
    clonePages: cloned.pagesUsed - before.pagesUsed,
    promptTokens: after.promptTokens - cloned.promptTokens,
    cachedPromptTokens: after.cachedPromptTokens - cloned.cachedPromptTokens,
    streamingAtOnce,
  };
}

function describeCost(clones: number, c: PromptPanelCost): string {
  const cloning = c.cloneSteps === 0 && c.clonePages === 0 ? 'cloning computed nothing and took no page' : `cloning took ${c.cloneSteps} steps and ${c.clonePages} pages`;
  return `${clones} clones of one ${c.contextTokens}-token context, ${c.streamingAtOnce} streaming at once: ${cloning}; ` +
    `their prompts took ${c.cachedPromptTokens} of ${c.promptTokens} tokens from the shared context and computed ${c.promptTokens - c.cachedPromptTokens}`;
}
