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
export { WorkflowPolicy, WorkflowState, WORKFLOW_DEFAULTS, KEPT_PAGE_HOLD_RATIO, type WorkflowPolicyOptions } from './workflow-policy.js';
export { StarvationBound, ADAPTIVE_STARVATION_DEFAULTS, type AdaptiveStarvationOptions } from './starvation-bound.js';
export { FootprintForecast, FOOTPRINT_FORECAST_DEFAULTS, type FootprintForecastOptions } from './footprint-forecast.js';
export { RetentionTtl, GapWindow, ADAPTIVE_TTL_DEFAULTS, type AdaptiveTtlOptions, type TtlSource } from './retention-ttl.js';
export { KvManager, type KvOwner } from '../kv/kv-manager.js';
export { SessionRegistry, KvSession, SessionLimitError, DEFAULT_MAX_SESSIONS, DEFAULT_SESSION_UNPIN_AFTER_MS, type SessionInfo, type SessionLimits } from './session-registry.js';
