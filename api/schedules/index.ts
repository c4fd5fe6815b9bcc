/** Schedule policies, cloud backup schedules and the scheduler that runs them (used by the API and the daemon). */
export { type Clock, ManualClock, systemClock, type TimerHandle } from './clock.js';
export { type LeaseRecord, Leases } from './lease.js';
export {
  dueIntervals,
  intervalKey,
  nextOccurrence,
  nextRun,
  previousOccurrence,
  rewoundFires,
} from './next-run.js';
export { type PolicyInput, type ScheduleInput, ScheduleRecords, stateKey } from './records.js';
export { cloudBackupsRunner, type ScheduledBackup, type ScheduledBackupRunner } from './runner.js';
export { BackupScheduler, type BackupSchedulerOptions, type SchedulerLog } from './scheduler.js';
export * from './types.js';
