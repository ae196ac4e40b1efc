// Reading a Mooncake-format request trace (FAST'25 release: one JSON object a line,
// {timestamp ms, input_length, output_length, hash_ids: one id per 512-token block}) into calls
// for wgserve, scaled so one 512-token block becomes one KV page:
// - tokens: each hash id becomes `pageSize` token ids derived from the id alone, so requests
//   sharing a block id share the page's tokens (and the prefix cache shares the page); a
//   request's prompt has round(input_length × pageSize / 512) tokens, the last block cut short;
//   output_length is scaled the same way (at least 1 token);
// - workflow identity (the trace has none): a request belongs to the workflow of the latest
//   earlier request with which it shares the longest run of leading blocks, if that run is longer
//   than the prefix every request of the trace shares (in the conversation trace, block 0, a
//   system prompt common to all); otherwise it starts a workflow. So the turns of a conversation,
//   and in the synthetic trace the requests on one leading document, form a workflow;
// - agent identity: a request whose prompt extends every full block of that earlier request's
//   prompt continues its agent (the next turn: its pages are what the policy keeps); one that shares
//   only part of it is a new agent of the same workflow (a branch).
// The trace files are not in this repository: pass the path of a file you fetched.
import { readFileSync } from 'node:fs';

export interface TraceRecord {
  timestamp: number;
  input_length: number;
  output_length: number;
  hash_ids: number[];
}

export interface TraceCall {
  /** Index in the trace file (0-based line of the records read). */
  index: number;
  /** Milliseconds after the slice's first call, times the time scale. */
  atMs: number;
  promptIds: number[];
  maxTokens: number;
  workflowId: string;
  agentId: string;
}

export interface TraceSlice {
  calls: TraceCall[];
  /** Requests in the slice that did not fit the context (skipped). */
  tooLong: number;
  /** Leading blocks every request of the file shares (not counted as a workflow link). */
  commonBlocks: number;
}

const BLOCK_TOKENS = 512;

export function readTrace(path: string): TraceRecord[] {
  return readFileSync(path, 'utf8').split('\n').filter((l) => l.trim()).map((line, i) => {
    const r = JSON.parse(line) as TraceRecord;
    if (!Number.isFinite(r.timestamp) || !(r.input_length >= 1) || !(r.output_length >= 0) || !Array.isArray(r.hash_ids)) {
      throw new Error(`${path}:${i + 1}: not a Mooncake trace record (timestamp, input_length, output_length, hash_ids)`);
    }
    return r;
  });
}

interface TrieNode { last: number; children: Map<number, TrieNode> }

/** Workflow and agent of every record (see the header). */
export function inferIdentities(records: readonly TraceRecord[]): { workflow: string[]; agent: string[]; commonBlocks: number } {
  let common = records.length ? records[0].hash_ids.length : 0;
  for (const r of records) {
    let k = 0;
    while (k < common && k < r.hash_ids.length && r.hash_ids[k] === records[0].hash_ids[k]) k++;
    common = k;
  }
  const root: TrieNode = { last: -1, children: new Map() };
  const workflow: string[] = [];
  const agent: string[] = [];
  const agentsOf = new Map<string, number>();
  records.forEach((r, i) => {
    let node = root;
    let shared = 0;
    let parent = -1;
    for (const h of r.hash_ids) {
      const next = node.children.get(h);
      if (!next) break;
      node = next;
      shared++;
      parent = next.last;
    }
    if (parent >= 0 && shared > common) {
      workflow[i] = workflow[parent];
      // The parent's last block is usually partial, so the next turn has a new id there: sharing
      // every full block of the parent is continuing it.
      if (shared >= Math.floor(records[parent].input_length / BLOCK_TOKENS)) agent[i] = agent[parent];
      else {
        const n = agentsOf.get(workflow[i])!;
        agentsOf.set(workflow[i], n + 1);
        agent[i] = `a${n}`;
      }
    } else {
      workflow[i] = `t${i}`;
      agent[i] = 'a0';
      agentsOf.set(workflow[i], 1);
    }
    node = root;
    for (const h of r.hash_ids) {
      let next = node.children.get(h);
      if (!next) node.children.set(h, (next = { last: i, children: new Map() }));
      next.last = i;
      node = next;
    }
  });
  return { workflow, agent, commonBlocks: common };
}

/** The token ids standing for block `id` (the same for every request). */
function blockTokens(id: number, pageSize: number, vocab: number): number[] {
  return Array.from({ length: pageSize }, (_, j) => {
    let h = Math.imul((id + 1) ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(j + 1, 0xc2b2ae35);
    h = Math.imul(h ^ (h >>> 16), 0x7feb352d) >>> 0;
    return 4 + (h % (vocab - 4)); // ids 0-3 are control tokens in the shipped vocabularies
  });
}

/**
 * Calls `skip` .. `skip + limit` of the trace, scaled (see the header), with their arrival times
 * relative to the first one times `timeScale`; calls whose prompt and output do not fit
 * `contextLength` are left out (counted); with `multiOnly`, so are the calls of workflows that
 * have only one call left in the slice.
 */
export function sliceTrace(records: readonly TraceRecord[], o: { skip: number; limit: number; timeScale: number; pageSize: number; vocab: number; contextLength: number; multiOnly?: boolean }): TraceSlice {
  const ids = inferIdentities(records);
  const chosen = records.slice(o.skip, o.skip + o.limit);
  const t0 = chosen.length ? chosen[0].timestamp : 0;
  const calls: TraceCall[] = [];
  let tooLong = 0;
  chosen.forEach((r, k) => {
    const index = o.skip + k;
    const promptLength = Math.max(1, Math.round((r.input_length * o.pageSize) / BLOCK_TOKENS));
    const maxTokens = Math.max(1, Math.round((r.output_length * o.pageSize) / BLOCK_TOKENS));
    if (promptLength + maxTokens >= o.contextLength) {
      tooLong++;
      return;
    }
    const promptIds: number[] = [];
    for (let b = 0; promptIds.length < promptLength; b++) {
      const id = r.hash_ids[b] ?? -1 - index * 1000 - b; // past the listed blocks: ids of this request alone
      promptIds.push(...blockTokens(id, o.pageSize, o.vocab).slice(0, promptLength - promptIds.length));
    }
    calls.push({ index, atMs: (r.timestamp - t0) * o.timeScale, promptIds, maxTokens, workflowId: ids.workflow[index], agentId: ids.agent[index] });
  });
  if (!o.multiOnly) return { calls, tooLong, commonBlocks: ids.commonBlocks };
  const count = new Map<string, number>();
  for (const c of calls) count.set(c.workflowId, (count.get(c.workflowId) ?? 0) + 1);
  const multi = calls.filter((c) => count.get(c.workflowId)! > 1);
  const t1 = multi.length ? multi[0].atMs : 0;
  return { calls: multi.map((c) => ({ ...c, atMs: c.atMs - t1 })), tooLong, commonBlocks: ids.commonBlocks };
}
