/**
 * Schedule policies and cloud backup schedules in the shape of OpenStorage's SdkSchedulePolicy,
 * SdkSchedulePolicyInterval and SdkCloudBackupScheduleInfo (libopenstorage/openstorage api/api.proto), snake_case as
 * in the REST gateway, with Ferry's additions: GFS `retention`, `policy_name` on a schedule, and `owner`.
 */
import type { RetentionRules } from '../../cloudsnap/index.js';

/** SdkTimeWeekday without its prefix. */
export const WEEKDAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'] as const;
export type Weekday = (typeof WEEKDAYS)[number];

/** SdkSchedulePolicyIntervalPeriodic: every `seconds`, counted from when the schedule was created. */
export interface PeriodicSpec {
  seconds: number;
}
/** SdkSchedulePolicyIntervalDaily: every day at hour:minute UTC. */
export interface DailySpec {
  hour: number;
  minute: number;
}
/** SdkSchedulePolicyIntervalWeekly: every week on `day` at hour:minute UTC. */
export interface WeeklySpec {
  day: Weekday;
  hour: number;
  minute: number;
}
/** SdkSchedulePolicyIntervalMonthly: every month on `day` (1-31; the month's last day when it is shorter). */
export interface MonthlySpec {
  day: number;
  hour: number;
  minute: number;
}

/** One of the four period types (the proto's `period_type` oneof). */
export type IntervalSpec =
  | { periodic: PeriodicSpec }
  | { daily: DailySpec }
  | { weekly: WeeklySpec }
  | { monthly: MonthlySpec };

/** SdkSchedulePolicyInterval: when, and how many backups taken at this interval to keep (`retain` >= 1). */
export type ScheduleInterval = IntervalSpec & { retain: number };

/** SdkSchedulePolicy plus Ferry's GFS `retention`, `owner` and times. */
export interface SchedulePolicy {
  /** Unique name (the key). */
  name: string;
  schedules: ScheduleInterval[];
  /** Ferry: grandfather-father-son rules applied after each scheduled backup, on top of each interval's `retain`. */
  retention?: RetentionRules;
  /** Ferry: who created it (the token's subject), '' without authentication. */
  owner: string;
  create_time: string;
  update_time: string;
}

/** SdkCloudBackupScheduleInfo plus Ferry's additions; a schedule uses either its own `schedules` or a policy. */
export interface CloudBackupSchedule {
  /** SdkCloudBackupSchedCreateResponse's `backup_schedule_id`. */
  id: string;
  /** Volume id or name as given. */
  src_volume_id: string;
  credential_id: string;
  /** The schedule's own intervals (empty when `policy_name` is set). */
  schedules: ScheduleInterval[];
  /** Ferry: take the intervals and GFS rules from this schedule policy (its updates apply at the next run). */
  policy_name?: string;
  /** Keep at most about this many scheduled backups: a `last` rule united with the others. */
  max_backups?: number;
  /** Every backup asks for a full read. */
  full?: boolean;
  /** Keep backups younger than this many days (a `within_days` rule). */
  retention_days?: number;
  /** Labels added to every backup. */
  labels?: Record<string, string>;
  /** Ferry: GFS rules of this schedule (with a policy, the policy's rules apply when this is absent). */
  retention?: RetentionRules;
  owner: string;
  create_time: string;
}

/** What the scheduler remembers of a schedule: when each interval last fired (by `intervalKey`). */
export interface ScheduleState {
  /** intervalKey -> RFC 3339 time the interval last fired. */
  last_fired: Record<string, string>;
  /** When the last scheduled backup was started, its task and (once ended) its status. */
  last_run?: string;
  last_task_id?: string;
  last_status?: string;
  /** Backups expired by retention after the last run. */
  last_expired?: number;
  last_error?: string;
}

/** Cluster-store key prefixes. */
export const POLICIES_PREFIX = '/ferry/schedule-policies/';
export const SCHEDULES_PREFIX = '/ferry/cloudbackup-schedules/';
export const STATE_PREFIX = '/ferry/cloudbackup-schedule-state/';
export const LEASES_PREFIX = '/ferry/leases/';

/** Label set on every scheduled backup: the schedule's id. */
export const SCHEDULE_LABEL = 'ferry.io/schedule';
/** Label set on every scheduled backup: the interval keys that fired it, comma-separated. */
export const INTERVALS_LABEL = 'ferry.io/intervals';
