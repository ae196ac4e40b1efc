import { describe, expect, it } from 'vitest';
import type { SeqTimings } from '../../src/engine/engine-core.js';
import type { EngineMetricsSnapshot } from '../../src/engine/engine.js';
import { EngineMetrics } from '../../src/engine/metrics.js';
import { prometheusText } from '../../src/engine/prometheus.js';
import { WorkflowMetrics } from '../../src/engine/workflow-metrics.js';
import { rng } from '../helpers/random.js';
import { parsePrometheus, promSum, promValue } from '../helpers/prometheus.js';

function timings(r: () => number, workflowId: string | null, agentId: string | null, at: number): SeqTimings {
  const generated = Math.floor(r() * 10);
  return {
    promptTokens: 5 + Math.floor(r() * 50), cachedTokens: Math.floor(r() * 5), generatedTokens: generated, arrivedAt: at, scheduledAt: at + 2,
    firstTokenAt: generated ? at + 5 : 0, finishedAt: at + 5 + generated, preemptions: Math.floor(r() * 2), workflowId, agentId,
  };
}

const SUMMED = ['calls', 'promptTokens', 'cachedTokens', 'generatedTokens', 'preemptions', 'queueMsSum', 'ttftMsSum', 'ttftCount', 'itlMsSum', 'itlCount'] as const;

function snapshotOf(metrics: EngineMetrics): EngineMetricsSnapshot {
  return { ...metrics.snapshot(), activeSequences: 0, pagesUsed: 3, pagesFree: 10, pagesCached: 3, pagesRetained: 1, totalPages: 16, deviceRecoveries: 0, policy: 'workflow', sessions: { open: 0, pinnedPages: 0, unpinned: 0, expired: 0 } };
}

describe('metrics per workflow and agent', () => {
  it('per-agent and per-workflow figures add up to the system totals, with old workflows folded into _other', () => {
    const metrics = new EngineMetrics(null, 3);
    const r = rng(5);
    for (let i = 0; i < 200; i++) {
      const wf = r() < 0.15 ? null : `wf-${Math.floor(r() * 9)}`;
      const agent = r() < 0.2 ? null : `agent-${Math.floor(r() * 3)}`;
      metrics.recordFinished(timings(r, wf, agent, i * 10));
      if (wf && r() < 0.05) metrics.workflows.end(wf);
    }
    const s = metrics.snapshot();
    expect(s.workflows.filter((w) => !w.workflowId.startsWith('_')).length).toBeLessThanOrEqual(3);
    expect(s.workflows.map((w) => w.workflowId)).toContain('_other');
    expect(s.workflows.map((w) => w.workflowId)).toContain('_none');
    for (const k of SUMMED) {
      const byAgents = s.workflows.flatMap((w) => w.agents).reduce((sum, a) => sum + a[k], 0);
      const byWorkflows = s.workflows.reduce((sum, w) => sum + w[k], 0);
      expect(byWorkflows).toBeCloseTo(byAgents, 6);
    }
    expect(s.workflows.reduce((n, w) => n + w.calls, 0)).toBe(s.requests);
    expect(s.workflows.reduce((n, w) => n + w.promptTokens, 0)).toBe(s.promptTokens);
    expect(s.workflows.reduce((n, w) => n + w.cachedTokens, 0)).toBe(s.cachedPromptTokens);
    expect(s.workflows.reduce((n, w) => n + w.generatedTokens, 0)).toBe(s.generatedTokens);
    expect(s.workflows.reduce((n, w) => n + w.preemptions, 0)).toBe(s.preemptions);
    expect(s.workflows.reduce((n, w) => n + w.ttftMsSum, 0)).toBeCloseTo(s.latency.ttftMsSum, 6);
  });

  it('records a workflow\'s completion time (first arrival to last finish) when it ends, and a reused id starts a new run', () => {
    const w = new WorkflowMetrics(8);
    const t = (agent: string, arrivedAt: number, finishedAt: number): SeqTimings => ({
      promptTokens: 4, cachedTokens: 0, generatedTokens: 2, arrivedAt, scheduledAt: arrivedAt, firstTokenAt: arrivedAt + 1, finishedAt, preemptions: 0, workflowId: 'job', agentId: agent,
    });
    w.recordFinished(t('planner', 100, 150));
    w.recordFinished(t('coder', 120, 400));
    expect(w.snapshot()[0].completionMs).toBeNull();
    expect(w.isOpen('job')).toBe(true);
    expect(w.end('job')).toBe(true);
    expect(w.end('job')).toBe(false);
    expect(w.snapshot()[0]).toMatchObject({ workflowId: 'job', calls: 2, completionMs: 300 });
    expect(w.snapshot()[0].agents.map((a) => [a.agentId, a.calls])).toEqual([['planner', 1], ['coder', 1]]);
    expect(w.completionSummary()).toEqual({ ended: 1, meanMs: 300 });
    w.recordFinished(t('planner', 1000, 1010));
    const snap = w.snapshot();
    expect(snap.find((e) => e.workflowId === 'job')).toMatchObject({ calls: 1, completionMs: null });
    expect(snap.find((e) => e.workflowId === '_other')).toMatchObject({ calls: 2 });
  });

  it('/metrics text parses as Prometheus text, labels escaped, and its agent series add up to the totals', () => {
    const metrics = new EngineMetrics(null, 4);
    const r = rng(9);
    const odd = 'quote " backslash \\ newline \n end';
    for (let i = 0; i < 39; i++) metrics.recordFinished(timings(r, i % 7 === 0 ? null : `w${i % 6}`, `a${i % 2}`, i));
    metrics.recordFinished(timings(r, 'w"\\', odd, 40));
    const families = parsePrometheus(prometheusText({ ...snapshotOf(metrics), sessions: { open: 2, pinnedPages: 5, unpinned: 3, expired: 1 } }, 'tiny'));
    const s = metrics.snapshot();
    expect(promValue(families, 'wgserve_requests_total', { model: 'tiny' })).toBe(40);
    for (const [agentName, total] of [
      ['wgserve_agent_calls_total', s.requests], ['wgserve_agent_prompt_tokens_total', s.promptTokens],
      ['wgserve_agent_generated_tokens_total', s.generatedTokens], ['wgserve_agent_preemptions_total', s.preemptions],
      ['wgserve_workflow_cached_prompt_tokens_total', s.cachedPromptTokens],
    ] as const) {
      expect(promSum(families, agentName)).toBe(total);
    }
    expect(promSum(families, 'wgserve_agent_time_to_first_token_seconds_sum')).toBeCloseTo(promValue(families, 'wgserve_time_to_first_token_seconds_sum')!, 9);
    expect(promValue(families, 'wgserve_kv_pages', { state: 'retained' })).toBe(1);
    expect(promSum(families, 'wgserve_kv_pages')).toBe(16);
    expect(promValue(families, 'wgserve_sessions_open', { model: 'tiny' })).toBe(2);
    expect(promValue(families, 'wgserve_session_pinned_pages', { model: 'tiny' })).toBe(5);
    expect(promValue(families, 'wgserve_sessions_unpinned_total', { model: 'tiny' })).toBe(3);
    expect(promValue(families, 'wgserve_sessions_expired_total', { model: 'tiny' })).toBe(1);
    const agents = new Set(families.get('wgserve_agent_calls_total')!.samples.map((x) => x.labels.agent));
    expect(agents.has(odd)).toBe(true);
    expect(new Set(families.get('wgserve_workflow_calls_total')!.samples.map((x) => x.labels.workflow)).has('w"\\')).toBe(true);
    // Bounded: 4 named workflows, _other and _none.
    expect(families.get('wgserve_workflow_calls_total')!.samples.length).toBe(6);
  });

  it('the parser refuses what Prometheus would refuse', () => {
    expect(() => parsePrometheus('x 1\n')).toThrow(/no TYPEd family/);
    expect(() => parsePrometheus('# TYPE x counter\nx{a="b} 1\n')).toThrow(/label syntax/);
    expect(() => parsePrometheus('# TYPE x counter\nx 1\nx 2\n')).toThrow(/repeated/);
    expect(() => parsePrometheus('# TYPE x counter\nx -1\n')).toThrow(/>= 0/);
    expect(() => parsePrometheus('# TYPE x summary\nx_total 1\n')).toThrow(/no TYPEd family/);
  });
});
