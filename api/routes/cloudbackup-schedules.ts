/**
 * Cloud backup schedule rpcs of OpenStorageCloudBackup (libopenstorage/openstorage api/api.proto): SchedCreate POST
 * /v1/cloudbackups/schedules (SdkCloudBackupSchedCreateResponse `backup_schedule_id`), SchedEnumerate GET
 * /v1/cloudbackups/schedules (`cloud_sched_list`: id -> SdkCloudBackupScheduleInfo plus Ferry's `next_run` and the
 * last run's outcome), SchedUpdate PUT /v1/cloudbackups/schedules, SchedDelete DELETE
 * /v1/cloudbackups/schedules/{backup_schedule_id}.
 */
import { Hono } from 'hono';
import type { CredentialStore } from '../../cloudsnap/index.js';
import type { BackupAccess, ResourceAccess, ResourceRef } from '../auth/index.js';
import { addOperations, operationsWith } from '../operation.js';
import { type CloudBackupSchedule, nextRun, type SchedulePolicy, type ScheduleState } from '../schedules/index.js';
import {
  createCloudBackupScheduleSchema,
  scheduleIdSchema,
  updateCloudBackupScheduleSchema,
} from '../schemas/index.js';
import { ownerOf, type ScheduleApi, schedulesUnavailable } from './schedule-policies.js';

/** A schedule as SchedEnumerate shows it. */
export type CloudBackupScheduleView = CloudBackupSchedule & {
  /** When it runs next (RFC 3339); absent when its policy is gone. */
  next_run?: string;
} & Omit<ScheduleState, 'last_fired'>;

function view(
  schedule: CloudBackupSchedule,
  policies: ReadonlyMap<string, SchedulePolicy>,
  state: ScheduleState | undefined,
  now: number,
): CloudBackupScheduleView {
  const intervals =
    schedule.policy_name === undefined ? schedule.schedules : (policies.get(schedule.policy_name)?.schedules ?? []);
  const next = nextRun(intervals, Date.parse(schedule.create_time), now);
  const { last_fired: _fired, ...outcome } = state ?? { last_fired: {} };
  return { ...schedule, ...(next !== undefined && { next_run: new Date(next).toISOString() }), ...outcome };
}

function scheduleRef(id: string): ResourceRef {
  return { kind: 'schedule', id };
}

/** What the backup schedule operations work on. */
interface ScheduleDeps {
  api: ScheduleApi;
  guard: BackupAccess;
  access: ResourceAccess;
}

const define = operationsWith<ScheduleDeps>();

/** The backup schedule rpcs. */
export const cloudBackupScheduleOperations = [
  define({
    method: 'post',
    path: '/v1/cloudbackups/schedules',
    operationId: 'cloudBackupSchedCreate',
    tag: 'Schedules',
    summary: 'Schedules backups of a volume (its own intervals or a policy).',
    rpc: 'OpenStorageCloudBackup.SchedCreate',
    body: createCloudBackupScheduleSchema,
    handler: async (c, { body }, { api, guard, access }) => {
      const info = body.cloud_sched_info;
      const volume = await guard.volume(c, info.src_volume_id, 'Read');
      const credential = await guard.credential(c, info.credential_id, 'Read');
      const { schedules, ...rest } = info;
      const schedule = await api.records.createSchedule(
        { ...rest, schedules: schedules ?? [], src_volume_id: volume.id, credential_id: credential.credential_id },
        ownerOf(c),
      );
      await access.own(c, scheduleRef(schedule.id));
      api.changed?.();
      return c.json({ backup_schedule_id: schedule.id });
    },
  }),
  define({
    method: 'put',
    path: '/v1/cloudbackups/schedules',
    operationId: 'cloudBackupSchedUpdate',
    tag: 'Schedules',
    summary: 'Replaces what a backup schedule runs (intervals or policy, retention, labels); keeps its id and owner.',
    rpc: 'OpenStorageCloudBackup.SchedUpdate',
    body: updateCloudBackupScheduleSchema,
    handler: async (c, { body }, { api, guard, access }) => {
      const { cloud_sched_info: info, sched_uuid: id } = body;
      await access.require(c, scheduleRef(id), 'Write');
      const volume = await guard.volume(c, info.src_volume_id, 'Read');
      const credential = await guard.credential(c, info.credential_id, 'Read');
      const { schedules, ...rest } = info;
      await api.records.updateSchedule(id, {
        ...rest,
        schedules: schedules ?? [],
        src_volume_id: volume.id,
        credential_id: credential.credential_id,
      });
      api.changed?.();
      return c.json({});
    },
  }),
  define({
    method: 'get',
    path: '/v1/cloudbackups/schedules',
    operationId: 'cloudBackupSchedEnumerate',
    tag: 'Schedules',
    summary: 'Every backup schedule, with its next run and the last outcome.',
    rpc: 'OpenStorageCloudBackup.SchedEnumerate',
    handler: async (c, _input, { api, access }) => {
      const { records } = api;
      const [all, policies, states] = await Promise.all([
        records.listSchedules(),
        records.listPolicies(),
        records.states(),
      ]);
      const schedules = await access.filter(c, all, (s) => scheduleRef(s.id));
      const byName = new Map(policies.map((p) => [p.name, p]));
      const at = (api.now ?? Date.now)();
      return c.json({
        cloud_sched_list: Object.fromEntries(schedules.map((s) => [s.id, view(s, byName, states.get(s.id), at)])),
      });
    },
  }),
  define({
    method: 'delete',
    path: '/v1/cloudbackups/schedules/{backup_schedule_id}',
    operationId: 'cloudBackupSchedDelete',
    tag: 'Schedules',
    summary: 'Deletes a backup schedule.',
    rpc: 'OpenStorageCloudBackup.SchedDelete',
    params: { backup_schedule_id: scheduleIdSchema },
    handler: async (c, { params }, { api, access }) => {
      const id = params.backup_schedule_id;
      await access.require(c, scheduleRef(id), 'Write');
      await api.records.deleteSchedule(id);
      api.changed?.();
      return c.json({});
    },
  }),
];

/**
 * Routes of the schedule rpcs, to mount under `/v1` (before the other cloud backup routes). Creating a schedule
 * takes Read on its volume and credential (what a backup takes) and makes the caller its owner; a caller lists the
 * schedules it may read and deletes those it may write.
 */
export function cloudBackupScheduleRoutes(
  api: ScheduleApi | undefined,
  guard: BackupAccess,
  access: ResourceAccess,
  credentials: CredentialStore | undefined,
): Hono {
  const routes = new Hono();
  if (api === undefined || credentials === undefined) {
    routes.all('/cloudbackups/schedules', schedulesUnavailable);
    routes.all('/cloudbackups/schedules/*', schedulesUnavailable);
    return routes;
  }
  return addOperations(routes, cloudBackupScheduleOperations, { api, guard, access });
}
