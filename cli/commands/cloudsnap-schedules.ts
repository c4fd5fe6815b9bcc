/**
 * `ferry cloudsnap schedules create|update|list|delete`: per-volume cloud backup schedules, with their own intervals
 * (`--daily 02:00,7`) or a policy (`--policy nightly`); retention runs after each scheduled backup.
 */
import { type Command, InvalidArgumentError } from 'commander';
import type { CloudBackupScheduleView } from '../../api/index.js';
import { clientFor, output } from '../context.js';
import { parseLabel, parseWholeNumber, renderTable } from '../format.js';
import {
  addScheduleFlags,
  describeInterval,
  describeRetention,
  intervalsOf,
  retentionOf,
  type ScheduleFlagValues,
} from './schedule-flags.js';

interface CreateOptions extends ScheduleFlagValues {
  cred: string;
  policy?: string;
  maxBackups?: number;
  full?: boolean;
  label?: Record<string, string>;
}

/** The options create and update share (besides the interval flags). */
function withScheduleOptions(command: Command): Command {
  return command
    .requiredOption('--cred <credential>', 'credential id or name (where the backups go)')
    .option('--policy <name>', 'take intervals and GFS rules from this schedule policy')
    .option('--max-backups <n>', 'also keep the newest N backups of this schedule', parseWholeNumber)
    .option('--full', 'every scheduled backup reads all allocated blocks')
    .option('--label <key=value>', 'label added to each backup (repeatable)', parseLabel);
}

/** SdkCloudBackupScheduleInfo from the flags. */
function scheduleInfo(volume: string, options: CreateOptions): Record<string, unknown> {
  const intervals = intervalsOf(options);
  if (intervals.length > 0 === (options.policy !== undefined)) {
    throw new InvalidArgumentError('give either --policy or intervals (--periodic, --daily, --weekly, --monthly)');
  }
  const retention = retentionOf(options);
  return {
    src_volume_id: volume,
    credential_id: options.cred,
    ...(intervals.length > 0 && { schedules: intervals }),
    ...(options.policy !== undefined && { policy_name: options.policy }),
    ...(options.maxBackups !== undefined && { max_backups: options.maxBackups }),
    ...(options.full === true && { full: true }),
    ...(options.label !== undefined && { labels: options.label }),
    ...(retention !== undefined && { retention }),
  };
}

/** Adds `schedules` under `cloudsnap`. */
export function registerCloudsnapScheduleCommands(cloudsnap: Command): void {
  const schedules = cloudsnap
    .command('schedules')
    .description('scheduled backups of a volume (times in UTC); retention expires old ones after each run');

  addScheduleFlags(
    withScheduleOptions(
      schedules
        .command('create')
        .description('schedule backups of a volume, with intervals of its own or a policy’s')
        .argument('<volume>', 'volume id or name'),
    ),
  ).action(async (volume: string, options: CreateOptions, command: Command) => {
    const response = await clientFor(command).request<{ backup_schedule_id: string }>(
      'POST',
      '/v1/cloudbackups/schedules',
      { cloud_sched_info: scheduleInfo(volume, options) },
    );
    output(command, response, () => `Backup schedule ${response.backup_schedule_id} created for ${volume}`);
  });

  addScheduleFlags(
    withScheduleOptions(
      schedules
        .command('update')
        .description('replace what a schedule runs (give everything again, as for create); its id and owner stay')
        .argument('<id>', 'schedule id (ferry cloudsnap schedules list)')
        .requiredOption('--volume <volume>', 'volume id or name'),
    ),
  ).action(async (id: string, options: CreateOptions & { volume: string }, command: Command) => {
    const body = { sched_uuid: id, cloud_sched_info: scheduleInfo(options.volume, options) };
    const response = await clientFor(command).request('PUT', '/v1/cloudbackups/schedules', body);
    output(command, response, () => `Backup schedule ${id} updated`);
  });

  schedules
    .command('list')
    .description('list backup schedules with their next run and last outcome')
    .action(async (_options: unknown, command: Command) => {
      const response = await clientFor(command).request<{ cloud_sched_list: Record<string, CloudBackupScheduleView> }>(
        'GET',
        '/v1/cloudbackups/schedules',
      );
      const list = Object.values(response.cloud_sched_list);
      output(command, response, () =>
        renderTable(
          ['ID', 'VOLUME', 'CREDENTIAL', 'INTERVALS', 'GFS', 'NEXT RUN', 'LAST'],
          list.map((s) => [
            s.id,
            s.src_volume_id,
            s.credential_id,
            s.policy_name !== undefined ? `policy ${s.policy_name}` : s.schedules.map(describeInterval).join('; '),
            describeRetention(s.retention),
            s.next_run ?? '-',
            s.last_status === undefined ? '-' : `${s.last_status} ${s.last_run ?? ''}`.trim(),
          ]),
        ),
      );
    });

  schedules
    .command('delete')
    .description('delete a backup schedule (its backups stay)')
    .argument('<id>', 'schedule id (see `ferry cloudsnap schedules list`)')
    .action(async (id: string, _options: unknown, command: Command) => {
      const response = await clientFor(command).request(
        'DELETE',
        `/v1/cloudbackups/schedules/${encodeURIComponent(id)}`,
      );
      output(command, response, () => `Backup schedule ${id} deleted`);
    });
}
