// metadata.workflow_id / agent_id and priority through the Web Worker (headless Chromium): an
// engine loaded in the worker with policy 'workflow' takes them, keeps the agent's pages for its
// next call, reports per-workflow and per-agent figures, rejects bad values with the OpenAI error
// shape and ends a workflow on request.
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openBrowserSession, type BrowserSession } from '../helpers/browser.js';

describe('workflow metadata and priority through the Web Worker (headless Chromium)', () => {
  let session: BrowserSession;
  let page: Page;
  beforeAll(async () => {
    session = await openBrowserSession();
    page = await session.context.newPage();
    await page.goto(`${session.origin}/test/e2e/pages/worker.html`);
    await page.evaluate(() => window.wg.load(undefined, { policy: 'workflow' }));
  });
  afterAll(async () => {
    await page?.evaluate(() => window.wg.engine?.terminate());
    await session?.close();
  });

  it('takes metadata and priority, keeps the agent\'s context for its next call and counts per agent', async () => {
    const r = await page.evaluate(async () => {
      const engine = window.wg.engine!;
      const metadata = { workflow_id: 'wf-worker', agent_id: 'planner' };
      const system = { role: 'system' as const, content: 'You plan trips through Russia in War and Peace and answer in one short sentence.' };
      const question = { role: 'user' as const, content: 'Where does Pierre go first?' };
      const first = await engine.chat.completions.create({ messages: [system, question], temperature: 0, max_tokens: 4, metadata, priority: -1 });
      const second = await engine.chat.completions.create({
        messages: [system, question, { role: 'assistant' as const, content: first.choices[0].message.content ?? '' }, { role: 'user' as const, content: 'And then?' }],
        temperature: 0, max_tokens: 4, metadata, priority: 2,
      });
      const m = await engine.metrics();
      const wf = m.workflows.find((w) => w.workflowId === 'wf-worker');
      const ended = await engine.workflows.end('wf-worker');
      const endedAgain = await engine.workflows.end('wf-worker');
      const after = (await engine.metrics()).workflows.find((w) => w.workflowId === 'wf-worker');
      return {
        usage: [first.usage, second.usage].map((u) => ({ prompt: u!.prompt_tokens, cached: u!.prompt_tokens_details.cached_tokens, generated: u!.completion_tokens })),
        agents: wf?.agents.map((a) => ({ id: a.agentId, calls: a.calls, prompt: a.promptTokens, cached: a.cachedTokens, generated: a.generatedTokens })),
        calls: wf?.calls,
        ended, endedAgain,
        completion: after?.completionMs ?? null,
      };
    });
    const [first, second] = r.usage;
    // The second call extends the first conversation: the pages kept for the agent serve its prefix.
    expect(second.cached).toBeGreaterThanOrEqual(Math.floor((first.prompt - 1) / 16) * 16);
    expect(second.cached).toBeGreaterThan(0);
    expect(r.calls).toBe(2);
    expect(r.agents).toEqual([{
      id: 'planner', calls: 2, prompt: first.prompt + second.prompt, cached: first.cached + second.cached, generated: first.generated + second.generated,
    }]);
    expect([r.ended, r.endedAgain]).toEqual([true, false]);
    expect(r.completion).toBeGreaterThan(0);
  });

  it('rejects a bad priority or metadata in the worker with the OpenAI error shape', async () => {
    const base = { messages: [{ role: 'user', content: 'Who is Natasha?' }], max_tokens: 1 };
    const badPriority = await page.evaluate((b) => window.wg.error({ ...b, priority: 1.5 }), base);
    expect(badPriority).toMatchObject({ status: 400, param: 'priority' });
    const badWorkflow = await page.evaluate((b) => window.wg.error({ ...b, metadata: { workflow_id: 5 } }), base);
    expect(badWorkflow).toMatchObject({ status: 400, param: 'metadata.workflow_id' });
    const badAgent = await page.evaluate((b) => window.wg.error({ ...b, metadata: { workflow_id: 'w', agent_id: ['a'] } }), base);
    expect(badAgent).toMatchObject({ status: 400, param: 'metadata.agent_id' });
  });
});
