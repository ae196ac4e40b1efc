// Admission counts the live workflows' agent contexts as long as they are expected to grow by
// their agents' last calls (FootprintForecast): growth per call measured from the calls, calls to
// come from the agents of ended workflows. Fake model, fake clock.
import { describe, expect, it } from 'vitest';
import { FootprintForecast } from '../../src/scheduler/footprint-forecast.js';
import type { WorkflowPolicyOptions } from '../../src/scheduler/index.js';
import { call, fakeScheduler, tokens } from '../helpers/fake-scheduler.js';

describe('FootprintForecast', () => {
  it('expects a call to grow its context by the mean measured growth, by maxTokens before any', () => {
    const f = new FootprintForecast({ window: 3 });
    expect(f.growthPerCall(6)).toBe(6);
    for (const g of [10, 20, 0, -5, Infinity]) f.observeGrowth(g); // only the positive, finite ones count
    expect(f.growthsSeen).toBe(2);
    expect(f.growthPerCall(6)).toBe(15);
    f.observeGrowth(30);
    f.observeGrowth(40); // the window keeps the last 3: 20, 30, 40
    expect(f.growthPerCall(6)).toBe(30);
  });

  it('expects as many calls again as an agent has made, until enough agents have ended; then E[N - k | N >= k]', () => {
    const f = new FootprintForecast({ minAgents: 4 });
    expect(f.remainingCalls(1)).toBe(1);
    expect(f.remainingCalls(5)).toBe(5);
    for (const n of [2, 4, 6]) f.observeAgentCalls(n);
    expect(f.learnedCalls).toBe(false);
    f.observeAgentCalls(8);
    expect(f.learnedCalls).toBe(true);
    expect(f.remainingCalls(1)).toBe((1 + 3 + 5 + 7) / 4);
    expect(f.remainingCalls(4)).toBe((0 + 2 + 4) / 3);
    expect(f.remainingCalls(8)).toBe(0);
    expect(f.remainingCalls(9)).toBe(0); // longer than any seen: nothing known to come
  });

  it('refuses a bad option', () => {
    expect(() => new FootprintForecast({ window: 0 })).toThrow(/window must be a positive integer/);
    expect(() => new FootprintForecast({ minAgents: 1.5 })).toThrow(/minAgents/);
  });
});

/**
 * Workflow x: agent a made a 16-token call (1 token answered) and now a second one of 24 tokens
 * (it grew by 8) that decodes for a while; x is live. Then workflow y sends one 16-token call.
 */
function growThenNewcomer(env: ReturnType<typeof fakeScheduler>) {
  const first = tokens(16, 1);
  env.sched.add(call(first, 1, 'x', 'a'));
  env.drain();
  const second = call([...first, 5, ...tokens(7, 2)], 40, 'x', 'a');
  env.sched.add(second);
  env.step();
  const newcomer = call(tokens(16, 3), 1, 'y', 'a');
  env.sched.add(newcomer);
  env.step();
  return { second, newcomer };
}

function growingWorkflow(pages: number, workflow: Omit<WorkflowPolicyOptions, 'kv' | 'clock'>) {
  const env = fakeScheduler({ pages, workflow: { starvationMs: 1_000_000, ...workflow } });
  return { ...env, ...growThenNewcomer(env) };
}

describe('workflow policy: admission counts how the live contexts will grow', () => {
  it('holds a new workflow that fits beside the live contexts as they are but not as they are expected to grow', () => {
    // x's context: 25-26 tokens, 7 pages of 4; expected 2 more calls of 8 tokens: 4 pages more.
    // y: 4 pages and 1 call of 8 tokens: 2 more. 7 + 4 = 11 fit in 14 pages; 11 + 6 = 17 do not.
    const held = growingWorkflow(14, {});
    expect(held.second.status).toBe('running');
    expect(held.newcomer.status).toBe('waiting');
    held.drain();
    expect(held.newcomer.generated.length).toBe(1);
    const asTheyAre = growingWorkflow(14, { forecastGrowth: false });
    expect(asTheyAre.newcomer.status).not.toBe('waiting');
  });

  it('never forecasts a context past the context length', () => {
    // x's context (25-26 tokens) can grow by 2-3 tokens before 28: no page; y's by 8: 2 pages. 7 + 4 + 2 <= 14.
    const capped = growingWorkflow(14, { contextLength: 28 });
    expect(capped.second.status).toBe('running');
    expect(capped.newcomer.status).not.toBe('waiting');
  });

  it('learns from ended workflows how many calls their agents make', () => {
    function afterTwoEndedWorkflows(minAgents: number) {
      const env = fakeScheduler({ pages: 13, workflow: { starvationMs: 1_000_000, footprintForecast: { minAgents } } });
      // Two workflows whose agents made two calls each (each grew by 3 tokens), then ended.
      for (const id of ['p', 'q']) {
        for (const agent of ['a', 'b']) {
          const opening = tokens(8, id.charCodeAt(0) + agent.charCodeAt(0));
          env.sched.add(call(opening, 1, id, agent));
          env.drain();
          env.sched.add(call([...opening, 1, 2, 3], 1, id, agent));
          env.drain();
        }
        env.workflow.end(id);
      }
      const { second, newcomer } = growThenNewcomer(env);
      expect(second.status).toBe('running');
      return { ...env, newcomer };
    }
    // Growth per call: the mean of 3, 3, 3, 3 and 8 tokens = 4, a page.
    const learned = afterTwoEndedWorkflows(2);
    expect(learned.workflow.forecast!.learnedCalls).toBe(true);
    expect(learned.workflow.forecast!.remainingCalls(2)).toBe(0);
    expect(learned.workflow.forecast!.remainingCalls(1)).toBe(1);
    // x's agent, at its second call, makes no more: 7 pages; y 4 + 1 more call: 12 <= 13, y starts.
    expect(learned.newcomer.status).not.toBe('waiting');
    // Not learnt yet: x's agent expected to make 2 more calls (2 pages), y 1 more: 9 + 5 > 13, y waits.
    const guessed = afterTwoEndedWorkflows(8);
    expect(guessed.workflow.forecast!.learnedCalls).toBe(false);
    expect(guessed.newcomer.status).toBe('waiting');
  });

  it('counts the calls of a workflow without agent ids as one agent whose context grows', () => {
    const { sched, workflow, drain, step } = fakeScheduler({ pages: 64, workflow: { starvationMs: 1_000_000 } });
    let history = tokens(16, 1);
    for (let c = 0; c < 3; c++) {
      const s = call(history, 1, 'chat');
      sched.add(s);
      drain();
      history = [...s.tokens, ...tokens(7, 10 + c)];
    }
    const last = call(history, 30, 'chat');
    sched.add(last);
    step();
    // One context of 16 + 3 × 8 = 40 tokens (11 pages with the token being decoded), growing 8 tokens a
    // call for 4 more calls (as many again): 8 pages. Counted per call it would be 4 contexts.
    expect(workflow.workflow('chat')!.agents.size).toBe(1);
    expect(workflow.reservedPages()).toBe(11 + 8);
  });

  it('keeps no room for an agent that has not come back within its retention TTL', () => {
    const { sched, clock, step, drain } = fakeScheduler({ pages: 14, workflow: { starvationMs: 1_000_000, retentionTtlMs: 1000, forecastGrowth: false } });
    const [a, b] = [tokens(16, 1), tokens(16, 2)];
    sched.add(call(a, 1, 'x', 'a'));
    sched.add(call(b, 1, 'x', 'b'));
    drain(); // both finished at 0: expected back until 1000
    const bAgain = call([...b, 5, ...tokens(7, 3)], 40, 'x', 'b');
    sched.add(bAgain);
    step();
    clock.now = 500;
    const newcomer = call(tokens(16, 4), 1, 'y', 'a');
    sched.add(newcomer);
    step();
    // a's 17 tokens (5 pages) + b's 25-26 (7) + y's 16 (4) > 14: y waits while a may still come back.
    expect([bAgain.status, newcomer.status]).toEqual(['running', 'waiting']);
    clock.now = 1500; // a is not back: 7 + 4 <= 14
    step();
    expect(newcomer.status).not.toBe('waiting');
    expect(bAgain.status).toBe('running');
  });
});
