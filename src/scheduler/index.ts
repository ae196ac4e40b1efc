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
export { KvManager, type KvOwner } from '../kv/kv-manager.js';
