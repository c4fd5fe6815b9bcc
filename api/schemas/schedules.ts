/**
 * Request schemas of OpenStorageSchedulePolicy (SdkSchedulePolicyCreateRequest, ...UpdateRequest) and of the cloud
 * backup schedule rpcs (SdkCloudBackupSchedCreateRequest), snake_case as in api.proto, with Ferry's additions
 * (`retention` GFS rules, `policy_name`). Numbers take protobuf JSON's forms (a number or a string of digits);
 * `hour` and `minute` may be left out (proto3 omits zero values); weekdays are `Monday`, `SdkTimeWeekdayMonday` or
 * 0-6 (Sunday 0, as SdkTimeWeekday).
 */
import { z } from 'zod';
import type { ScheduleInterval } from '../schedules/index.js';
import { WEEKDAYS } from '../schedules/index.js';
import { labelsSchema, nameSchema, typeError } from './common.js';
import { credentialRefSchema } from './credentials.js';

/** Most intervals in one policy or schedule. */
export const MAX_INTERVALS = 16;
/** Shortest periodic interval: one minute. */
export const MIN_PERIOD_SECONDS = 60;

function whole(min: number, max: number) {
  return z
    .union([z.number(), z.string().regex(/^[0-9]{1,15}$/, 'must be a whole number')], typeError('a whole number'))
    .transform((value) => (typeof value === 'string' ? Number(value) : value))
    .pipe(
      z.number().int('must be a whole number').min(min, `must be at least ${min}`).max(max, `must be at most ${max}`),
    );
}

const hour = whole(0, 23).default(0);
const minute = whole(0, 59).default(0);

const weekdaySchema = z
  .union([z.string(), z.number()], typeError('a weekday'))
  .transform((v) => {
    if (typeof v === 'number') return WEEKDAYS[v] ?? String(v);
    return v.startsWith('SdkTimeWeekday') ? v.slice('SdkTimeWeekday'.length) : v;
  })
  .pipe(z.enum(WEEKDAYS, { error: () => `must be one of ${WEEKDAYS.join(', ')} (or 0-6, Sunday 0)` }));

/** SdkSchedulePolicyInterval: `retain` and exactly one of periodic, daily, weekly, monthly. */
export const intervalSchema = z
  .strictObject(
    {
      retain: whole(1, 100_000),
      periodic: z.strictObject({ seconds: whole(MIN_PERIOD_SECONDS, 366 * 86_400) }, typeError('an object')).optional(),
      daily: z.strictObject({ hour, minute }, typeError('an object')).optional(),
      weekly: z.strictObject({ day: weekdaySchema.default('Sunday'), hour, minute }, typeError('an object')).optional(),
      monthly: z.strictObject({ day: whole(1, 31), hour, minute }, typeError('an object')).optional(),
    },
    typeError('an object'),
  )
  .superRefine((v, ctx) => {
    const set = [v.periodic, v.daily, v.weekly, v.monthly].filter((x) => x !== undefined).length;
    if (set !== 1)
      ctx.addIssue({ code: 'custom', message: 'must set exactly one of periodic, daily, weekly, monthly' });
  })
  .transform((v): ScheduleInterval => {
    if (v.periodic !== undefined) return { periodic: v.periodic, retain: v.retain };
    if (v.daily !== undefined) return { daily: v.daily, retain: v.retain };
    if (v.weekly !== undefined) return { weekly: v.weekly, retain: v.retain };
    return { monthly: v.monthly as NonNullable<typeof v.monthly>, retain: v.retain };
  });

const count = whole(0, 100_000).optional();

/** Ferry's GFS rules: keep last N, and the newest backup of the last N hours, days, ISO weeks, months, years. */
export const retentionSchema = z.strictObject(
  {
    last: count,
    hourly: count,
    daily: count,
    weekly: count,
    monthly: count,
    yearly: count,
    within_days: count,
  },
  typeError('an object'),
);

const intervalsSchema = z.array(intervalSchema, typeError('an array')).max(MAX_INTERVALS, `at most ${MAX_INTERVALS}`);

/** SdkSchedulePolicy: `{ name, schedules, retention? }`. */
export const schedulePolicySchema = z.strictObject(
  {
    name: nameSchema,
    schedules: intervalsSchema.min(1, 'must hold at least one interval'),
    retention: retentionSchema.optional(),
  },
  typeError('a JSON object'),
);

/** SdkSchedulePolicyCreateRequest and SdkSchedulePolicyUpdateRequest: `{ schedule_policy }`. */
export const schedulePolicyRequestSchema = z.strictObject(
  { schedule_policy: schedulePolicySchema },
  typeError('a JSON object'),
);

/** SdkCloudBackupScheduleInfo: the volume, the credential, and either `schedules` or a `policy_name`. */
export const cloudBackupScheduleInfoSchema = z
  .strictObject(
    {
      src_volume_id: nameSchema,
      credential_id: credentialRefSchema,
      schedules: intervalsSchema.optional(),
      policy_name: nameSchema.optional(),
      max_backups: whole(0, 100_000).optional(),
      full: z.boolean(typeError('true or false')).optional(),
      retention_days: whole(0, 36_500).optional(),
      labels: labelsSchema.optional(),
      retention: retentionSchema.optional(),
    },
    typeError('a JSON object'),
  )
  .superRefine((v, ctx) => {
    const own = (v.schedules?.length ?? 0) > 0;
    if (own === (v.policy_name !== undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: ['schedules'],
        message: 'give either schedules (at least one interval) or policy_name, not both',
      });
    }
  });

/** SdkCloudBackupSchedCreateRequest: `{ cloud_sched_info }`. */
export const createCloudBackupScheduleSchema = z.strictObject(
  { cloud_sched_info: cloudBackupScheduleInfoSchema },
  typeError('a JSON object'),
);

/** A schedule id in a path (as SchedCreate returned it). */
export const scheduleIdSchema = z
  .string(typeError('a string'))
  .regex(/^[0-9a-f-]{36}$/, 'must be a schedule id as GET /v1/cloudbackups/schedules lists it');

/** SdkCloudBackupSchedUpdateRequest: `{ cloud_sched_info, sched_uuid }` (the whole info replaces the schedule's). */
export const updateCloudBackupScheduleSchema = z.strictObject(
  { cloud_sched_info: cloudBackupScheduleInfoSchema, sched_uuid: scheduleIdSchema },
  typeError('a JSON object'),
);

export type SchedulePolicyBody = z.output<typeof schedulePolicySchema>;
export type CloudBackupScheduleInfoBody = z.output<typeof cloudBackupScheduleInfoSchema>;
