/**
 * `ferry cloudsnap schedules create|update|list|delete`: per-volume cloud backup schedules, with their own intervals
 * (`--daily 02:00,7`) or a policy (`--policy nightly`); retention runs after each scheduled backup.
 */
import { type Command, InvalidArgumentError } from 'commander';
import type { CloudBackupScheduleView, SchedulePolicy } from '../../api/index.js';
import type { FerryClient } from '../client.js';
import { clientFor, globalOptions, output } from '../context.js';
import { parseLabel, parseWholeNumber, renderTable } from '../format.js';
import { credentialList } from './cloudsnap-api.js';
import {
  addScheduleFlags,
  describeKeep,
  describeRetention,
  describeWhen,
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

/** What a schedule table shows instead of ids: volume and credential names, and the policies by name. */
export interface ScheduleNames {
  /** Volume id -> name. */
  volumes: ReadonlyMap<string, string>;
  /** Credential id -> name. */
  credentials: ReadonlyMap<string, string>;
  /** Policy name -> policy. */
  policies: ReadonlyMap<string, SchedulePolicy>;
}

async function scheduleNames(client: FerryClient): Promise<ScheduleNames> {
  const [volumes, credentials, policies] = await Promise.all([
    client.inspectVolumes(),
    credentialList(client),
    client.request<{ policies: SchedulePolicy[] }>('GET', '/v1/schedulepolicies'),
  ]);
  return {
    volumes: new Map(volumes.volumes.map((v) => [v.volume.id, v.volume.locator.name])),
    credentials: new Map(credentials.map((c) => [c.credential_id, c.name])),
    policies: new Map(policies.policies.map((p) => [p.name, p])),
  };
}

/** The retention a schedule applies: each interval's count, GFS rules, --max-backups and days. */
function retentionText(s: CloudBackupScheduleView, policy: SchedulePolicy | undefined): string {
  const intervals = s.policy_name === undefined ? s.schedules : (policy?.schedules ?? []);
  const parts: string[] = [];
  if (intervals.length > 0) parts.push(`keep ${intervals.map(describeKeep).join(', ')}`);
  const gfs = describeRetention(s.retention ?? (s.policy_name === undefined ? undefined : policy?.retention));
  if (gfs !== '-') parts.push(`GFS ${gfs}`);
  if (s.max_backups !== undefined) parts.push(`at most ${s.max_backups}`);
  if (s.retention_days !== undefined) parts.push(`${s.retention_days} days`);
  return parts.length === 0 ? '-' : parts.join('; ');
}

/** When a schedule runs: its intervals, or its policy's by name. */
function whenText(s: CloudBackupScheduleView, policy: SchedulePolicy | undefined): string {
  if (s.policy_name === undefined) return s.schedules.map(describeWhen).join(', ');
  if (policy === undefined) return `policy ${s.policy_name} (missing)`;
  return `policy ${s.policy_name}: ${policy.schedules.map(describeWhen).join(', ')}`;
}

/** Table of schedules: ID VOLUME CREDENTIAL SCHEDULE RETENTION NEXT RUN LAST, with names instead of ids. */
export function scheduleTable(list: readonly CloudBackupScheduleView[], names: ScheduleNames): string {
  if (list.length === 0) return 'no schedules';
  return renderTable(
    ['ID', 'VOLUME', 'CREDENTIAL', 'SCHEDULE', 'RETENTION', 'NEXT RUN', 'LAST'],
    list.map((s) => {
      const policy = s.policy_name === undefined ? undefined : names.policies.get(s.policy_name);
      return [
        s.id,
        names.volumes.get(s.src_volume_id) ?? s.src_volume_id,
        names.credentials.get(s.credential_id) ?? s.credential_id,
        whenText(s, policy),
        retentionText(s, policy),
        s.next_run ?? '-',
        s.last_status === undefined ? '-' : `${s.last_status} ${s.last_run ?? ''}`.trim(),
      ];
    }),
  );
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
      const client = clientFor(command);
      const response = await client.request<{ cloud_sched_list: Record<string, CloudBackupScheduleView> }>(
        'GET',
        '/v1/cloudbackups/schedules',
      );
      const list = Object.values(response.cloud_sched_list);
      if (globalOptions(command).json === true || list.length === 0) {
        output(command, response, () => 'no schedules');
        return;
      }
      const names = await scheduleNames(client);
      output(command, response, () => scheduleTable(list, names));
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
