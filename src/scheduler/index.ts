export { Sequence, type SequenceInit, type SequenceStatus, type FinishReason } from './sequence.js';
export {
  Scheduler,
  fcfs,
  type SchedulingPolicy,
  type SchedulerOptions,
  type ScheduledSeq,
  type ScheduledStep,
  type CommitResult,
} from './scheduler.js';
export { StepCostModel, type StepCost } from './step-cost.js';
export { WorkflowPolicy, WorkflowState, WORKFLOW_DEFAULTS, type WorkflowPolicyOptions } from './workflow-policy.js';
export { KvManager, type KvOwner } from '../kv/kv-manager.js';
export { SessionRegistry, KvSession, type SessionInfo } from './session-registry.js';
