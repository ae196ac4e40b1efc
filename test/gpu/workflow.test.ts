// Workflows through the engine on the shipped model: metadata.workflow_id / agent_id and priority
// are accepted and checked (400s naming the field); agents of several workflows calling in turns
// (histories growing, a tight KV pool) generate exactly the same text under fcfs and workflow;
// the per-agent metrics add up to the system totals; /metrics parses; ending a workflow releases
// the pages kept for it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError, createOpenAiHandler, type ChatCompletion, type Engine } from '../../src/index.js';
import { shippedEngine } from '../helpers/engine.js';
import { parsePrometheus, promSum, promValue } from '../helpers/prometheus.js';

const SYSTEM = 'You answer briefly. Tools: look(word).';
const ASKS = ['Natasha said', 'The count went', 'Pierre saw'];

async function apiError(p: Promise<unknown>): Promise<ApiError> {
  try {
    await p;
  } catch (e) {
    return e as ApiError;
  }
  throw new Error('expected the request to fail');
}

/** 3 workflows of 2 agents, 2 calls each, in parallel; returns every answer by workflow/agent/call. */
async function runAgents(engine: Engine): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const agent = async (wf: number, a: number) => {
    const messages: { role: 'system' | 'user' | 'assistant'; content: string }[] = [{ role: 'system', content: SYSTEM }, { role: 'user', content: ASKS[(wf + a) % 3] }];
    for (let call = 0; call < 2; call++) {
      const r = (await engine.chat.completions.create({
        messages, max_tokens: 8, temperature: 0, metadata: { workflow_id: `wf${wf}`, agent_id: `agent${a}` }, priority: wf === 2 ? -1 : 0,
      })) as ChatCompletion;
      const text = r.choices[0].message.content ?? '';
      out[`wf${wf}/agent${a}/${call}`] = text;
      messages.push({ role: 'assistant', content: text }, { role: 'user', content: `look: ${call}` });
    }
  };
  await Promise.all([0, 1, 2].flatMap((wf) => [0, 1].map((a) => agent(wf, a))));
  return out;
}

describe('workflows on the shipped model', () => {
  let fcfs: Engine;
  let workflow: Engine;
  beforeAll(async () => {
    fcfs = await shippedEngine({ policy: 'fcfs' });
    const pageBytes = fcfs.core!.kv.bytes / fcfs.core!.kv.pool.totalPages;
    // A pool of 24 pages of 16 tokens: six agents' contexts do not all stay cached.
    await fcfs.reload((fcfs.model!.source), { kvMemoryBytes: pageBytes * 24, policy: 'fcfs' });
    // The growth forecast learns agents' call counts once 4 agents have ended (default 8).
    workflow = await shippedEngine({ kvMemoryBytes: pageBytes * 24, policy: 'workflow', workflowTuning: { forecast: { minAgents: 4 } } });
  });
  afterAll(async () => {
    await fcfs?.unload();
    await workflow?.unload();
  });

  it('refuses bad metadata and priority with a 400 naming the field', async () => {
    const chat = (extra: object) => workflow.chat.completions.create({ messages: [{ role: 'user', content: 'hi' }], max_tokens: 1, ...extra } as never);
    const cases: [object, string, RegExp][] = [
      [{ metadata: 'wf' }, 'metadata', /must be an object/],
      [{ metadata: { workflow_id: 7 } }, 'metadata.workflow_id', /must be a string/],
      [{ metadata: { workflow_id: '' } }, 'metadata.workflow_id', /non-empty/],
      [{ metadata: { agent_id: 'x'.repeat(513) } }, 'metadata.agent_id', /at most 512/],
      [{ metadata: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v'])) }, 'metadata', /at most 16 keys/],
      [{ metadata: { ['k'.repeat(65)]: 'v' } }, 'metadata', /at most 64 characters/],
      [{ priority: 1.5 }, 'priority', /integer/],
      [{ priority: '1' }, 'priority', /integer/],
    ];
    for (const [extra, param, message] of cases) {
      const e = await apiError(chat(extra));
      expect(e.status, param).toBe(400);
      expect(e.toJSON().error, param).toMatchObject({ type: 'invalid_request_error', param });
      expect(e.message).toMatch(message);
    }
    const text = await workflow.completions.create({ prompt: 'The', max_tokens: 1, metadata: { workflow_id: 'solo', note: 'x' }, priority: 3 });
    expect(text.choices).toHaveLength(1);
    expect(await workflow.workflows.end('solo')).toBe(true);
  });

  it('generates the same text under fcfs and workflow; metrics add up; /metrics parses; end releases kept pages', async () => {
    workflow.resetChat();
    const a = await runAgents(fcfs);
    const b = await runAgents(workflow);
    expect(Object.keys(b).length).toBe(12);
    expect(b).toEqual(a);

    const m = workflow.metrics();
    expect(m.policy).toBe('workflow');
    const named = m.workflows.filter((w) => w.workflowId.startsWith('wf'));
    expect(named.map((w) => w.workflowId).sort()).toEqual(['wf0', 'wf1', 'wf2']);
    for (const w of named) expect(w.agents.map((x) => x.calls)).toEqual([2, 2]);
    const agents = m.workflows.flatMap((w) => w.agents);
    expect(agents.reduce((s, x) => s + x.calls, 0)).toBe(m.requests);
    expect(agents.reduce((s, x) => s + x.promptTokens, 0)).toBe(m.promptTokens);
    expect(agents.reduce((s, x) => s + x.cachedTokens, 0)).toBe(m.cachedPromptTokens);
    expect(agents.reduce((s, x) => s + x.generatedTokens, 0)).toBe(m.generatedTokens);
    expect(agents.reduce((s, x) => s + x.preemptions, 0)).toBe(m.preemptions);
    // The second call of each agent found its first call's context.
    expect(m.cachedPromptTokens).toBeGreaterThan(0);
    expect(m.pagesRetained).toBeGreaterThan(0);
    // Agents share pages (the system prompt), and each agent counts the pages kept for it.
    expect(named.reduce((s, w) => s + w.retainedPages, 0)).toBeGreaterThanOrEqual(m.pagesRetained);

    const handler = createOpenAiHandler(workflow);
    const response = await handler(new Request('http://localhost/metrics'));
    expect(response.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const families = parsePrometheus(await response.text());
    expect(promSum(families, 'wgserve_agent_generated_tokens_total')).toBe(m.generatedTokens);
    expect(promValue(families, 'wgserve_kv_pages', { state: 'retained' })).toBe(m.pagesRetained);
    // Each agent's second call measured a gap: 6 gaps, too few for the adaptive TTL (8): the 10 s fallback.
    expect(m.workflowPolicy).toMatchObject({ retentionTtlMs: 10_000, retentionTtlSource: 'fallback', gapsMeasured: 6, gapsNeeded: 8, starvationAdaptive: true });
    expect(m.workflowPolicy!.starvationBoundMs).toBeGreaterThanOrEqual(10_000);
    expect(promValue(families, 'wgserve_workflow_retention_ttl_seconds', {})).toBe(m.workflowPolicy!.retentionTtlMs / 1000);
    // Each agent's second call measured how much it grew its context; admission holds room for the open workflows' agents.
    expect(m.workflowPolicy!.growthTokensPerCall).toBeGreaterThan(0);
    expect(m.workflowPolicy!.callsLearnt).toBe(false);
    expect(m.workflowPolicy!.reservedPages).toBeGreaterThan(0);
    expect(promValue(families, 'wgserve_workflow_reserved_pages', {})).toBe(m.workflowPolicy!.reservedPages);
    expect(promValue(families, 'wgserve_workflow_kept_pages_evicted_total', {})).toBe(m.workflowPolicy!.keptPagesEvicted);
    expect(fcfs.metrics().workflowPolicy).toBeNull();

    for (const id of ['wf0', 'wf1', 'wf2']) expect((await handler(new Request(`http://localhost/v1/workflows/${id}`, { method: 'DELETE' }))).status).toBe(200);
    expect((await handler(new Request('http://localhost/v1/workflows/wf0', { method: 'DELETE' }))).status).toBe(404);
    const after = workflow.metrics();
    expect(after.pagesRetained).toBe(0);
    expect(after.workflowPolicy!.reservedPages).toBe(0);
    expect(after.workflowPolicy!.callsLearnt).toBe(true); // 6 agents of ended workflows >= minAgents 4
    for (const w of after.workflows.filter((x) => x.workflowId.startsWith('wf'))) expect(w.completionMs).toBeGreaterThan(0);
    expect(await workflow.runtimeStatsText()).toMatch(/3 workflows \(0 pages retained, 3 ended, mean completion/);
    expect(await workflow.runtimeStatsText()).toMatch(/workflow policy: starvation bound [\d.]+ s \(adaptive\), retention TTL 10\.0 s \(default until 8 gaps between calls are measured, 6 so far\)/);
    workflow.core!.scheduler.checkInvariants();
  });
});
