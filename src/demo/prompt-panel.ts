// The demo's Prompt API panel: one LanguageModel session given a context, cloned several times,
// the clones streaming their replies side by side (on the demo's engine, batched together).
import type { WorkerEngine } from '../browser/index.js';
import { createLanguageModel, type LanguageModelClass, type LanguageModelSession } from '../prompt-api/index.js';

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;

export interface PromptPanelState {
  /** Sessions of the last run finished (tests wait for it). */
  finished: number;
  texts: string[];
}

export class PromptPanel {
  readonly state: PromptPanelState = { finished: 0, texts: [] };
  private engine: WorkerEngine | null = null;

  constructor() {
    $('pa-start').addEventListener('click', () => void this.run());
  }

  /** A newly loaded engine: sessions run on it from now on. */
  setEngine(engine: WorkerEngine): void {
    this.engine = engine;
    $<HTMLButtonElement>('pa-start').disabled = false;
  }

  private async run(): Promise<void> {
    // The agents' "tokens each" bounds each reply here too.
    const LanguageModel: LanguageModelClass = createLanguageModel({ engine: this.engine!, maxResponseTokens: Number($<HTMLInputElement>('max-tokens').value) });
    const button = $<HTMLButtonElement>('pa-start');
    const grid = $('pa-sessions');
    const status = $('pa-status');
    const clones = Math.max(1, Math.min(8, Number($<HTMLInputElement>('pa-clones').value)));
    const openings = $<HTMLInputElement>('pa-prompts').value.split('|').map((s) => s.trim()).filter(Boolean);
    button.disabled = true;
    grid.textContent = '';
    this.state.finished = 0;
    this.state.texts = [];
    try {
      const base = await LanguageModel.create({ initialPrompts: [{ role: 'user', content: $<HTMLInputElement>('pa-context').value }] });
      status.textContent = `base session: ${base.contextUsage} of ${base.contextWindow} tokens; cloning ${clones}`;
      const sessions = await Promise.all(Array.from({ length: clones }, () => base.clone()));
      await Promise.all(sessions.map((s, i) => this.stream(s, i, openings[i % openings.length] ?? 'Go on.', grid)));
      base.destroy();
      status.textContent = `${clones} clones of one context streamed side by side`;
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
    try {
      for await (const chunk of session.promptStreaming(prompt) as unknown as AsyncIterable<string>) {
        text += chunk;
        out.textContent = text;
      }
      panel.querySelector('.meta')!.textContent = `${session.contextUsage} / ${session.contextWindow} tokens`;
    } catch (e) {
      panel.querySelector('.meta')!.textContent = (e as Error).message;
    } finally {
      this.state.texts[index] = text;
      this.state.finished++;
      session.destroy();
    }
  }
}
