// Engine metrics in the Prometheus text exposition format (version 0.0.4): system counters and
// gauges, then per-workflow and per-agent families labelled {workflow, agent}. The label sets are
// bounded by the metrics' own bound (the most recent workflows, the rest under workflow="_other").
import type { EngineMetricsSnapshot } from './engine.js';
import type { CallFigures } from './workflow-metrics.js';

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

type Labels = Record<string, string>;
type Sample = [Labels, number];

class Exposition {
  private readonly lines: string[] = [];

  family(name: string, type: 'counter' | 'gauge', help: string, samples: Sample[]): void {
    this.lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) this.lines.push(`${name}${labelText(labels)} ${num(value)}`);
  }

  summary(name: string, help: string, rows: [Labels, number, number][]): void {
    this.lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} summary`);
    for (const [labels, sum, count] of rows) {
      this.lines.push(`${name}_sum${labelText(labels)} ${num(sum)}`, `${name}_count${labelText(labels)} ${num(count)}`);
    }
  }

  text(): string {
    return this.lines.join('\n') + '\n';
  }
}

function labelText(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

function num(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (!Number.isFinite(v)) return v > 0 ? '+Inf' : '-Inf';
  return String(v);
}

/** The families every level (agent, workflow) has, from its CallFigures. */
function callFamilies(out: Exposition, level: 'agent' | 'workflow', rows: [Labels, CallFigures][]): void {
  const p = `wgserve_${level}`;
  const counter = (name: string, help: string, pick: (f: CallFigures) => number) => out.family(`${p}_${name}`, 'counter', help, rows.map(([l, f]) => [l, pick(f)]));
  counter('calls_total', `Finished calls per ${level}.`, (f) => f.calls);
  counter('prompt_tokens_total', `Prompt tokens of finished calls per ${level}.`, (f) => f.promptTokens);
  counter('cached_prompt_tokens_total', `Prompt tokens taken from the prefix cache per ${level}.`, (f) => f.cachedTokens);
  counter('generated_tokens_total', `Generated tokens per ${level}.`, (f) => f.generatedTokens);
  counter('preemptions_total', `Preemptions of calls per ${level}.`, (f) => f.preemptions);
  out.summary(`${p}_queue_seconds`, `Arrival to first step per call, per ${level}.`, rows.map(([l, f]) => [l, f.queueMsSum / 1000, f.calls]));
  out.summary(`${p}_time_to_first_token_seconds`, `Time to first token per call, per ${level}.`, rows.map(([l, f]) => [l, f.ttftMsSum / 1000, f.ttftCount]));
  out.summary(`${p}_inter_token_latency_seconds`, `Gaps between consecutive tokens, per ${level}.`, rows.map(([l, f]) => [l, f.itlMsSum / 1000, f.itlCount]));
}

export function prometheusText(m: EngineMetricsSnapshot, modelId: string): string {
  const out = new Exposition();
  const model = { model: modelId };
  out.family('wgserve_requests_total', 'counter', 'Finished requests (sequences).', [[model, m.requests]]);
  out.family('wgserve_prompt_tokens_total', 'counter', 'Prompt tokens of finished requests.', [[model, m.promptTokens]]);
  out.family('wgserve_cached_prompt_tokens_total', 'counter', 'Prompt tokens taken from the prefix cache.', [[model, m.cachedPromptTokens]]);
  out.family('wgserve_generated_tokens_total', 'counter', 'Generated tokens of finished requests.', [[model, m.generatedTokens]]);
  out.family('wgserve_preemptions_total', 'counter', 'Times a sequence lost its KV and was recomputed.', [[model, m.preemptions]]);
  out.family('wgserve_steps_total', 'counter', 'Engine steps run.', [[model, m.steps]]);
  out.summary('wgserve_queue_seconds', 'Arrival to first step per request.', [[model, m.latency.queueMsSum / 1000, m.requests]]);
  out.summary('wgserve_time_to_first_token_seconds', 'Time to first token per request.', [[model, m.latency.ttftMsSum / 1000, m.latency.ttftCount]]);
  out.summary('wgserve_inter_token_latency_seconds', 'Gaps between consecutive tokens.', [[model, m.latency.itlMsSum / 1000, m.latency.itlCount]]);
  out.family('wgserve_prefix_cache_query_tokens_total', 'counter', 'Tokens looked up in the prefix cache.', [[model, m.prefixCache.queryTokens]]);
  out.family('wgserve_prefix_cache_hit_tokens_total', 'counter', 'Looked-up tokens found cached.', [[model, m.prefixCache.hitTokens]]);
  out.family('wgserve_prefix_cache_hit_rate', 'gauge', 'hit tokens / query tokens.', [[model, m.prefixCache.hitRate]]);
  out.family('wgserve_prefix_cache_evictions_total', 'counter', 'Cached pages freed to make room.', [[model, m.prefixCache.evictions]]);
  const referenced = m.totalPages - m.pagesFree - m.pagesCached;
  out.family('wgserve_kv_pages', 'gauge', 'KV pages by state (retained: cached pages pinned for a workflow\'s next call).', [
    [{ ...model, state: 'referenced' }, referenced], [{ ...model, state: 'cached' }, m.pagesCached - m.pagesRetained],
    [{ ...model, state: 'retained' }, m.pagesRetained], [{ ...model, state: 'free' }, m.pagesFree],
  ]);
  if (m.workflowPolicy) {
    out.family('wgserve_workflow_starvation_bound_seconds', 'gauge', 'workflow policy: a call queued longer than this goes first.', [[model, m.workflowPolicy.starvationBoundMs / 1000]]);
    out.family('wgserve_workflow_reserved_pages', 'gauge', 'workflow policy: KV pages admission holds for the live workflows (their agents\' contexts and expected growth); a new workflow starts when it fits beside them.', [[model, m.workflowPolicy.reservedPages]]);
    out.family('wgserve_workflow_kept_pages_evicted_total', 'counter', 'workflow policy: kept KV pages evicted before their agent\'s next call took them (the pool is short for the live workflows).', [[model, m.workflowPolicy.keptPagesEvicted]]);
    out.family('wgserve_workflow_retention_ttl_seconds', 'gauge', 'workflow policy: how long a finished call\'s KV pages are kept for its agent\'s next call (a workflow with measured gaps of its own uses them).', [[model, m.workflowPolicy.retentionTtlMs / 1000]]);
  }
  out.family('wgserve_active_sequences', 'gauge', 'Sequences waiting or running.', [[model, m.activeSequences]]);
  out.family('wgserve_sessions_open', 'gauge', 'Engine sessions open.', [[model, m.sessions.open]]);
  out.family('wgserve_session_pinned_pages', 'gauge', 'Distinct KV pages the sessions pin.', [[model, m.sessions.pinnedPages]]);
  out.family('wgserve_sessions_unpinned_total', 'counter', 'Sessions unpinned (for room, or idle past the unpin time).', [[model, m.sessions.unpinned]]);
  out.family('wgserve_sessions_expired_total', 'counter', 'Sessions destroyed because they were idle past the expiry time.', [[model, m.sessions.expired]]);
  const store = m.contextStore;
  if (store) {
    const c = (name: string, help: string, v: number) => out.family(`wgserve_context_store_${name}`, 'counter', help, [[model, v]]);
    c('pages_written_total', 'KV pages written to the context store.', store.pagesWritten);
    c('bytes_written_total', 'Bytes of records written to the context store.', store.bytesWritten);
    c('pages_read_total', 'Records read (and checked) from the context store.', store.pagesRead);
    c('bytes_read_total', 'Bytes of records read from the context store.', store.bytesRead);
    c('restores_total', 'Requests whose prefix was restored from the context store.', store.restores);
    c('pages_restored_total', 'KV pages restored from the context store instead of computed.', store.pagesRestored);
    c('records_dropped_total', 'Records that failed a check (corrupt, truncated, another model) and were deleted unused.', store.recordsDropped);
    c('records_evicted_total', 'Records evicted for the byte budget.', store.recordsEvicted);
    c('write_errors_total', 'Failed writes (a full storage stops writing).', store.writeErrors);
    out.family('wgserve_context_store_bytes', 'gauge', 'Bytes the context store\'s records take.', [[model, store.bytes]]);
    out.family('wgserve_context_store_records', 'gauge', 'Records in the context store.', [[model, store.records]]);
    out.family('wgserve_context_store_pending_writes', 'gauge', 'Filled KV pages not in the context store yet (compressing, reading back, writing).', [[model, store.pendingWrites]]);
    out.family('wgserve_context_store_writing', 'gauge', '1 while the context store writes, 0 once storage was full.', [[model, store.writing ? 1 : 0]]);
    out.family('wgserve_context_store_kept_contexts', 'gauge', 'Contexts kept in the context store (contexts.keep).', [[model, store.keptContexts]]);
    out.family('wgserve_context_store_kept_bytes', 'gauge', 'Bytes of the kept contexts\' records (not evicted for the budget).', [[model, store.keptBytes]]);
  }
  const flows = m.workflows;
  callFamilies(out, 'workflow', flows.map((w) => [{ workflow: w.workflowId }, w]));
  out.family('wgserve_workflow_retained_pages', 'gauge', 'KV pages pinned for the workflow\'s next calls.', flows.map((w) => [{ workflow: w.workflowId }, w.retainedPages]));
  out.family('wgserve_workflow_completion_seconds', 'gauge', 'First arrival to last finish of an ended workflow.',
    flows.filter((w) => w.completionMs !== null).map((w) => [{ workflow: w.workflowId }, w.completionMs! / 1000]));
  const agents = flows.flatMap((w) => w.agents.map((a) => [{ workflow: w.workflowId, agent: a.agentId }, a] as [Labels, typeof a]));
  callFamilies(out, 'agent', agents);
  out.family('wgserve_agent_retained_pages', 'gauge', 'KV pages pinned for the agent\'s next call.', agents.map(([l, a]) => [l, a.retainedPages]));
  return out.text();
}
