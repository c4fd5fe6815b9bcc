/**
 * Deleting what a cloud backup schedule uses (its volume or its credential): refused with FAILED_PRECONDITION naming
 * the schedules, or, with `with_schedules`, the schedules are deleted too, in one step: when deleting the volume or
 * credential fails after the schedules went, they are put back, so the step leaves the old state or the new one.
 */
import { FerryError } from '../../common/index.js';
import type { ScheduleApi } from '../routes/schedule-policies.js';
import type { CloudBackupSchedule } from './types.js';

/** What a schedule depends on: a volume (by id or name) or a credential (by id or name). */
export interface ScheduleTarget {
  kind: 'volume' | 'credential';
  id: string;
  name: string;
}

function uses(schedule: CloudBackupSchedule, target: ScheduleTarget): boolean {
  const ref = target.kind === 'volume' ? schedule.src_volume_id : schedule.credential_id;
  return ref === target.id || ref === target.name;
}

/**
 * Runs `remove` (the deletion of `target`) when no schedule uses it; else refuses, or with `withSchedules` deletes
 * those schedules first and puts them back if `remove` fails. Returns the ids of the schedules deleted.
 */
export async function removeWithSchedules(
  schedules: ScheduleApi | undefined,
  target: ScheduleTarget,
  withSchedules: boolean,
  remove: () => Promise<void>,
): Promise<string[]> {
  if (schedules === undefined) {
    await remove();
    return [];
  }
  const users = (await schedules.records.listSchedules()).filter((s) => uses(s, target));
  if (users.length === 0) {
    await remove();
    return [];
  }
  const ids = users.map((s) => s.id).sort();
  if (!withSchedules) {
    const command = target.kind === 'volume' ? 'ferry volume delete' : 'ferry credentials delete';
    throw new FerryError(
      'FAILED_PRECONDITION',
      `${target.kind} ${target.name} is used by cloud backup ${ids.length === 1 ? 'schedule' : 'schedules'} ` +
        `${ids.join(', ')}: delete ${ids.length === 1 ? 'it' : 'them'} first (ferry cloudsnap schedules delete), ` +
        `or delete ${ids.length === 1 ? 'it' : 'them'} with the ${target.kind} (${command} --with-schedules; API with_schedules)`,
    );
  }
  const deleted = await schedules.records.deleteSchedules(ids);
  try {
    await remove();
  } catch (err: unknown) {
    await schedules.records.restoreSchedules(deleted);
    throw err;
  }
  schedules.changed?.();
  return ids;
}
