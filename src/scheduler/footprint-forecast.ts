// How much an open workflow's agent contexts will still grow (the workflow policy's admission).
// An agent's context grows with every call: its answer and the tool result are appended, and the
// next call sends it all again. Admission that counts the live workflows' contexts as they are now
// lets in workflows that fit the pool today and outgrow it together tomorrow; then their agents
// evict each other's contexts between calls and every call prefills its history again, which is
// what keeping pages was for. So admission counts each agent's context as it is expected to be at
// the agent's last call: its length now plus the measured growth per call (the mean over the last
// `window` calls, of any workflow, of how many tokens a call's prompt added to its agent's last
// context) times the calls the agent is expected still to make: E[N - k | N >= k] over the call
// counts N of the agents of the last `agentWindow` ended workflows, k its calls so far. Before
// `minAgents` agents have been seen end, it is expected to make as many calls again as it has
// made (k), and before any growth is measured a call grows its context by its answer's maxTokens.

import { RecentValues } from './recent-values.js';

export interface FootprintForecastOptions {
  /** How many recent growths (tokens a call added to its agent's context) the mean is over (default 64). */
  window?: number;
  /** How many agents of ended workflows the call counts come from (default 256). */
  agentWindow?: number;
  /** Agents of ended workflows needed before their call counts are used (default 8). */
  minAgents?: number;
}

export const FOOTPRINT_FORECAST_DEFAULTS = { window: 64, agentWindow: 256, minAgents: 8 } as const;

export class FootprintForecast {
  readonly window: number;
  readonly agentWindow: number;
  readonly minAgents: number;
  private readonly growths: RecentValues;
  private readonly agentCalls: RecentValues;

  constructor(options: FootprintForecastOptions = {}) {
    this.window = options.window ?? FOOTPRINT_FORECAST_DEFAULTS.window;
    this.agentWindow = options.agentWindow ?? FOOTPRINT_FORECAST_DEFAULTS.agentWindow;
    this.minAgents = options.minAgents ?? FOOTPRINT_FORECAST_DEFAULTS.minAgents;
    for (const [name, v] of [['window', this.window], ['agentWindow', this.agentWindow], ['minAgents', this.minAgents]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new Error(`footprint forecast: ${name} must be a positive integer, got ${v}`);
    }
    this.growths = new RecentValues(this.window);
    this.agentCalls = new RecentValues(this.agentWindow);
  }

  /** Records how many tokens an agent's call added to its last context (ignored unless > 0). */
  observeGrowth(tokens: number): void {
    if (tokens > 0) this.growths.add(tokens);
  }

  /** Records how many calls an agent of an ended workflow made. */
  observeAgentCalls(calls: number): void {
    if (Number.isInteger(calls) && calls >= 1) this.agentCalls.add(calls);
  }

  /** Tokens a call is expected to add to its agent's context (`answerTokens` before any growth is measured). */
  growthPerCall(answerTokens: number): number {
    return this.growths.count ? this.growths.mean() : answerTokens;
  }

  /** Calls an agent that has made `calls` so far is expected still to make. */
  remainingCalls(calls: number): number {
    if (!this.learnedCalls) return calls;
    let sum = 0;
    let n = 0;
    for (const total of this.agentCalls.all()) {
      if (total < calls) continue;
      sum += total - calls;
      n++;
    }
    return n ? sum / n : 0;
  }

  /** Whether the call counts come from ended workflows yet (else the "as many again" guess). */
  get learnedCalls(): boolean {
    return this.agentCalls.count >= this.minAgents;
  }

  get growthsSeen(): number {
    return this.growths.count;
  }
}
