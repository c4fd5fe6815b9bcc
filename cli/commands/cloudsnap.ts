/**
 * `ferry cloudsnap backup|restore|list|status|catalog|delete|verify|gc|repair` (pxctl-like). Backups, restores and
 * verifies return at once with a task id; `--wait` (or `status TASK --watch`) follows the job to its end and exits 1
 * when it fails.
 */
import { type Command, InvalidArgumentError } from 'commander';
import type { CloudBackupInfoView, JobStatus } from '../../api/index.js';
import { ApiError, type FerryClient } from '../client.js';
import { clientFor, globalOptions, output } from '../context.js';
import { formatLabels, formatSize, parseLabel, parseWholeNumber, renderTable } from '../format.js';
import {
  catalog,
  credentialList,
  credentialOfBackup,
  gc,
  jobStatus,
  jobStatuses,
  listBackups,
  repair,
  waitForJob,
} from './cloudsnap-api.js';
import { progressReporter, progressText, statusLine } from './cloudsnap-progress.js';
import { registerCloudsnapScheduleCommands } from './cloudsnap-schedules.js';
import { registerCloudsnapVerifyCommand, verifyProgressText, verifyReportText } from './cloudsnap-verify.js';

interface BackupOptions {
  cred: string;
  group?: string[];
  groupId?: string;
  full?: boolean;
  label?: Record<string, string>;
  taskId?: string;
  wait?: boolean;
}

interface RestoreOptions {
  cred?: string;
  name: string;
  taskId?: string;
  wait?: boolean;
}

/** Follows a job to its end (progress on stderr); rejects when it did not end Done. */
async function follow(command: Command, taskId: string): Promise<JobStatus> {
  const quiet = globalOptions(command).json === true;
  const final = await waitForJob(clientFor(command), taskId, progressReporter(process.stderr, quiet));
  if (final.status !== 'Done') {
    const why = final.info.length > 0 ? `: ${final.info.join('; ')}` : '';
    if (quiet) output(command, final, () => '');
    throw new Error(`${final.optype.toLowerCase()} task ${taskId} ended ${final.status}${why}`);
  }
  return final;
}

function duration(s: JobStatus): string {
  if (s.start_time === undefined || s.completed_time === undefined) return '';
  const ms = Date.parse(s.completed_time) - Date.parse(s.start_time);
  return ` in ${(ms / 1000).toFixed(1)} s`;
}

/** A task's job, or else the job on this node that made backup `id`, or else the backup in its repository. */
async function jobOrBackup(
  client: FerryClient,
  id: string,
): Promise<{ job: JobStatus } | { backup: CloudBackupInfoView & { credential: string } }> {
  try {
    return { job: await jobStatus(client, id) };
  } catch (err: unknown) {
    if (!(err instanceof ApiError && err.code === 'NOT_FOUND')) throw err;
    const made = (await jobStatuses(client)).filter((s) => s.backup_id === id && s.optype === 'Backup');
    const last = made.at(-1);
    if (last !== undefined) return { job: last };
    let credential: string;
    try {
      credential = await credentialOfBackup(client, id);
    } catch (lookup: unknown) {
      if (lookup instanceof ApiError && lookup.code === 'NOT_FOUND') {
        throw new ApiError('NOT_FOUND', `no backup or restore task ${id}, and ${lookup.message}`, 404);
      }
      throw lookup;
    }
    const backup = (await listBackups(client, credential)).find((b) => b.id === id);
    if (backup === undefined) throw err;
    return { backup: { ...backup, credential } };
  }
}

/** One line per field of a committed backup (`cloudsnap status BACKUP` when no job of this node made it). */
export function describeBackup(b: CloudBackupInfoView & { credential: string }): string {
  const rows: [string, string][] = [
    ['Backup', b.id],
    ['Status', `${b.status} (committed)`],
    ['Volume', `${b.src_volume_name} (${b.src_volume_id})`],
    ['Credential', b.credential],
    ['Type', b.full ? 'full' : 'incremental'],
    ['Size', formatSize(b.size)],
    ['Stored', bytesText(b.bytes_stored)],
    ['Added', bytesText(b.bytes_uploaded)],
    ['Started', b.created],
    ['Completed', b.timestamp],
    ['Labels', formatLabels(b.metadata)],
  ];
  const width = Math.max(...rows.map(([key]) => key.length));
  return rows.map(([key, value]) => `${key.padEnd(width)}  :  ${value}`).join('\n');
}

/** One line per field of a job. */
export function describeJob(s: JobStatus): string {
  const rows: [string, string][] = [
    ['Task', s.task_id],
    ['Type', s.optype],
    ['Status', s.status + (s.phase !== undefined && s.status === 'Active' ? ` (${s.phase})` : '')],
    ['Volume', s.optype === 'Verify' ? '-' : `${s.volume_name} (${s.src_volume_id})`],
    ['Backup', s.backup_id ?? '-'],
    ['Credential', s.credential_id],
    ['Progress', progressText(s)],
    ['Started', s.start_time ?? '-'],
    ['Completed', s.completed_time ?? '-'],
  ];
  if (s.eta_seconds !== undefined) rows.push(['ETA', `${s.eta_seconds} s`]);
  if (s.info.length > 0) rows.push(['Info', s.info.join('; ')]);
  if (s.verify !== undefined && s.status !== 'Done') rows.push(['Checked', verifyProgressText(s.verify)]);
  const width = Math.max(...rows.map(([key]) => key.length));
  const text = rows.map(([key, value]) => `${key.padEnd(width)}  :  ${value}`).join('\n');
  return s.verify !== undefined && s.status === 'Done' ? `${text}\n${verifyReportText(s.verify)}` : text;
}

/** A byte count of a backup view (`-` when the API that answered does not report it). */
function bytesText(bytes: number | undefined): string {
  return bytes === undefined ? '-' : formatSize(bytes);
}

/**
 * Table of backups: BACKUP ID, VOLUME, COMPLETED, SIZE (the volume's), STORED (the volume data the backup holds),
 * ADDED (what it uploaded: new data, compressed and encrypted), TYPE, LABELS, and CREDENTIAL when listing every
 * credential's; `wide` adds NEW (new data before compression), STARTED and BASE. `no backups` when there are none.
 */
export function backupTable(
  list: readonly (CloudBackupInfoView & { credential?: string })[],
  withCredential: boolean,
  wide = false,
): string {
  if (list.length === 0) return 'no backups';
  const header = ['BACKUP ID', 'VOLUME', 'COMPLETED', 'SIZE', 'STORED', 'ADDED', 'TYPE', 'LABELS'];
  if (wide) header.push('NEW', 'STARTED', 'BASE');
  if (withCredential) header.push('CREDENTIAL');
  const rows = list.map((b) => {
    // A backup whose record does not open: the reason stands where its volume and labels would be.
    if (b.damage !== undefined) {
      const row = [b.id, 'DAMAGED', '-', '-', '-', '-', '-', b.damage];
      if (wide) row.push('-', '-', '-');
      if (withCredential) row.push(b.credential ?? '-');
      return row;
    }
    const row = [b.id, b.src_volume_name, b.timestamp, formatSize(b.size), bytesText(b.bytes_stored)];
    row.push(bytesText(b.bytes_uploaded), b.full ? 'full' : 'incremental', formatLabels(b.metadata));
    if (wide) row.push(bytesText(b.bytes_new), b.created, b.base_backup ?? '-');
    if (withCredential) row.push(b.credential ?? '-');
    return row;
  });
  return renderTable(header, rows);
}

/** `cloudsnap backup --group`: POST /v1/cloudbackups/group, then (with --wait) follows every job. */
async function backupGroup(command: Command, options: BackupOptions): Promise<void> {
  const response = await clientFor(command).request<{ group_cloud_backup_id: string; task_ids: string[] }>(
    'POST',
    '/v1/cloudbackups/group',
    {
      volume_ids: options.group,
      credential_id: options.cred,
      ...(options.groupId !== undefined && { group_id: options.groupId }),
      ...(options.full === true && { full: true }),
      ...(options.label !== undefined && { labels: options.label }),
    },
  );
  if (options.wait !== true) {
    output(
      command,
      response,
      () => `Group backup ${response.group_cloud_backup_id} started: tasks ${response.task_ids.join(', ')}`,
    );
    return;
  }
  const finals: JobStatus[] = [];
  for (const taskId of response.task_ids) finals.push(await follow(command, taskId));
  output(command, { ...response, statuses: finals }, () =>
    finals.map((s) => `Cloud backup ${s.backup_id} of ${s.volume_name} done: ${progressText(s)}`).join('\n'),
  );
}

/** Adds `cloudsnap` and its subcommands to `program`. */
export function registerCloudsnapCommands(program: Command): void {
  const cloudsnap = program
    .command('cloudsnap')
    .description('back volumes up to an object store (deduplicated, compressed, encrypted) and restore them');

  cloudsnap
    .command('backup')
    .description('back a volume (or, with --group, several at one point in time) up; returns task ids at once')
    .argument('[volume]', 'volume id or name')
    .option('--group <volumes>', 'back these volumes (comma-separated) up from snapshots of one point in time', (v) =>
      v.split(',').filter((s) => s !== ''),
    )
    .option('--group-id <id>', 'with --group: the group’s id (default a new one); asking again with it is idempotent')
    .requiredOption('--cred <credential>', 'credential id or name (where the backup goes)')
    .option('--full', 'read every allocated block, not only the changes since the last backup')
    .option('--label <key=value>', 'label to add to the backup (repeatable)', parseLabel)
    .option('--task-id <id>', 'idempotency key: asking again with it returns the same job')
    .option('--wait', 'wait until the backup ends (progress on stderr); exit 1 if it fails')
    .action(async (volume: string | undefined, options: BackupOptions, command: Command) => {
      if (options.group !== undefined) {
        if (volume !== undefined) throw new InvalidArgumentError('give either a volume or --group, not both');
        await backupGroup(command, options);
        return;
      }
      if (volume === undefined) throw new InvalidArgumentError('give a volume, or --group VOL1,VOL2');
      const response = await clientFor(command).request<{ task_id: string }>('POST', '/v1/cloudbackups', {
        volume_id: volume,
        credential_id: options.cred,
        ...(options.full === true && { full: true }),
        ...(options.label !== undefined && { labels: options.label }),
        ...(options.taskId !== undefined && { task_id: options.taskId }),
      });
      if (options.wait !== true) {
        output(command, response, () => `Cloud backup of ${volume} started: task ${response.task_id}`);
        return;
      }
      const s = await follow(command, response.task_id);
      output(command, s, () => `Cloud backup ${s.backup_id} of ${volume} done: ${progressText(s)}${duration(s)}`);
    });

  cloudsnap
    .command('restore')
    .description('restore a backup into a new volume; returns a task id at once')
    .argument('<backup>', 'backup id (see `ferry cloudsnap list`)')
    .option('--cred <credential>', 'credential id or name (default: the one credential whose repository has it)')
    .requiredOption('--name <volume>', 'name of the new volume')
    .option('--task-id <id>', 'idempotency key: asking again with it returns the same job')
    .option('--wait', 'wait until the restore ends (progress on stderr); exit 1 if it fails')
    .action(async (backupId: string, options: RestoreOptions, command: Command) => {
      const client = clientFor(command);
      const response = await client.request<{ task_id: string; restore_volume_id: string }>(
        'POST',
        '/v1/cloudbackups/restore',
        {
          backup_id: backupId,
          restore_volume_name: options.name,
          credential_id: await credentialOfBackup(client, backupId, options.cred),
          ...(options.taskId !== undefined && { task_id: options.taskId }),
        },
      );
      if (options.wait !== true) {
        output(
          command,
          response,
          () => `Restore of ${backupId} into ${options.name} started: task ${response.task_id}`,
        );
        return;
      }
      const s = await follow(command, response.task_id);
      output(command, s, () => `Restore of ${backupId} into ${options.name} done: ${progressText(s)}${duration(s)}`);
    });

  cloudsnap
    .command('list')
    .description('list the backups in a credential’s bucket (default: every credential’s)')
    .option('--cred <credential>', 'credential id or name')
    .option('--volume <volume>', 'only backups of this volume (id or name)')
    .action(async (options: { cred?: string; volume?: string }, command: Command) => {
      const client = clientFor(command);
      if (options.cred !== undefined) {
        const backups = await listBackups(client, options.cred, options.volume);
        output(command, { backups }, (wide) => backupTable(backups, false, wide));
        return;
      }
      // A credential that cannot be read (its KEK destroyed, its bucket gone) does not hide the others' backups.
      const backups: (CloudBackupInfoView & { credential: string })[] = [];
      const errors: { credential: string; code: string; message: string }[] = [];
      for (const { name: credential } of await credentialList(client)) {
        try {
          for (const b of await listBackups(client, credential, options.volume)) backups.push({ ...b, credential });
        } catch (err: unknown) {
          if (!(err instanceof ApiError) || err.status === 0) throw err;
          errors.push({ credential, code: err.code, message: err.message });
        }
      }
      output(command, { backups, ...(errors.length > 0 && { errors }) }, (wide) => backupTable(backups, true, wide));
      for (const e of errors) process.stderr.write(`warning: credential ${e.credential} not listed: ${e.message}\n`);
    });

  cloudsnap
    .command('status')
    .description('show backup and restore jobs, or one job or backup (--watch follows a job to its end)')
    .argument('[task]', 'task id, or a backup id (its job on this node, else the backup found among the credentials)')
    .option('--volume <volume>', 'only jobs of this volume (id or name)')
    .option('--watch', 'with a task id: show live progress until the job ends; exit 1 if it fails')
    .action(async (taskId: string | undefined, options: { volume?: string; watch?: boolean }, command: Command) => {
      const client = clientFor(command);
      if (taskId === undefined) {
        if (options.watch === true) throw new InvalidArgumentError('--watch needs a task id');
        const list = await jobStatuses(client, options.volume);
        output(command, { statuses: Object.fromEntries(list.map((s) => [s.task_id, s])) }, () =>
          list.length === 0
            ? 'no backup or restore jobs'
            : renderTable(
                ['TASK', 'TYPE', 'VOLUME', 'STATUS', 'PROGRESS', 'BACKUP'],
                list.map((s) => [s.task_id, s.optype, s.volume_name, s.status, progressText(s), s.backup_id ?? '-']),
              ),
        );
        return;
      }
      const found = await jobOrBackup(client, taskId);
      if ('backup' in found) {
        if (options.watch === true) throw new Error(`backup ${taskId} is committed: there is nothing to watch`);
        output(command, found.backup, () => describeBackup(found.backup));
        return;
      }
      const s = options.watch === true ? await follow(command, found.job.task_id) : found.job;
      output(command, s, () => (options.watch === true ? statusLine(s) : describeJob(s)));
    });

  cloudsnap
    .command('catalog')
    .description('show what a backup holds: the byte ranges with data, chunks and bytes')
    .argument('<backup>', 'backup id')
    .option('--cred <credential>', 'credential id or name (default: the one credential whose repository has it)')
    .action(async (backupId: string, options: { cred?: string }, command: Command) => {
      const client = clientFor(command);
      const view = await catalog(client, await credentialOfBackup(client, backupId, options.cred), backupId);
      output(command, view, () => {
        const s = view.summary;
        const rows = view.contents.map((c) => {
          const [offset = '0', length = '0'] = c.split('+');
          return [offset, length, formatSize(Number(length))];
        });
        const more = s.truncated ? ` (first ${view.contents.length} shown)` : '';
        const summary = `Backup ${s.backup_id} of ${s.volume_name}: ${formatSize(s.bytes)} of ${formatSize(s.size)} in ${s.chunks} chunks of ${formatSize(s.chunk_size)}, ${s.extent_count} extents${more}, ${s.leaves} manifest leaves`;
        return rows.length === 0 ? summary : `${renderTable(['OFFSET', 'LENGTH', 'SIZE'], rows)}\n${summary}`;
      });
    });

  cloudsnap
    .command('delete')
    .description('delete a backup (its record at once; its data at the next garbage collections)')
    .argument('<backup>', 'backup id')
    .option('--cred <credential>', 'credential id or name (default: the one credential whose repository has it)')
    .action(async (backupId: string, options: { cred?: string }, command: Command) => {
      const client = clientFor(command);
      const cred = await credentialOfBackup(client, backupId, options.cred);
      const response = await client.request<Record<string, never>>(
        'DELETE',
        `/v1/cloudbackups/backup/${encodeURIComponent(backupId)}?credential_id=${encodeURIComponent(cred)}`,
      );
      output(command, response, () => `Cloud backup ${backupId} deleted; \`ferry cloudsnap gc\` gives its space back`);
    });

  registerCloudsnapVerifyCommand(cloudsnap);

  cloudsnap
    .command('gc')
    .description('collect garbage: condemn unreferenced packs, delete those condemned longer than the grace period')
    .requiredOption('--cred <credential>', 'credential id or name')
    .option('--grace <seconds>', 'grace period of condemned packs (default 3600)', parseWholeNumber)
    .action(async (options: { cred: string; grace?: number }, command: Command) => {
      const result = await gc(clientFor(command), {
        credential_id: options.cred,
        ...(options.grace !== undefined && { grace_seconds: options.grace }),
      });
      output(command, result, () =>
        [
          `${result.packs} packs, ${result.live_chunks} live chunks: ${result.condemned} packs condemned, ${result.deleted} deleted (${formatSize(result.bytes_deleted)}), ${result.reprieved} reprieved`,
          ...result.damaged_backups.map(
            (d) => `nothing collected: damaged backup record ${d} (delete that backup, then run gc again)`,
          ),
          ...result.unreadable_packs.map((p) => `kept, header unreadable: ${p}`),
        ].join('\n'),
      );
    });

  cloudsnap
    .command('repair')
    .description('repair a repository: `index` rebuilds damaged or missing index objects from the packs’ headers')
    .argument('<what>', 'what to repair: index')
    .requiredOption('--cred <credential>', 'credential id or name')
    .action(async (what: string, options: { cred: string }, command: Command) => {
      if (what !== 'index') throw new InvalidArgumentError(`cannot repair "${what}": only \`index\` can be repaired`);
      const result = await repair(clientFor(command), { credential_id: options.cred, what });
      output(command, result, () =>
        result.repositories
          .map((r) => {
            const lines = [
              `${r.repository}: ${r.index_objects} index objects, ${r.packs} packs; ${r.damaged.length} damaged index objects, ${r.packs_reindexed} packs indexed again from their headers, ${r.packs_missing.length} indexed packs missing`,
            ];
            for (const d of r.damaged)
              lines.push(`  damaged ${d.object}: ${d.reason}${r.deleted.includes(d.object) ? ' (deleted)' : ''}`);
            for (const d of r.packs_unreadable) lines.push(`  unreadable pack ${d.object}: ${d.reason}`);
            for (const k of r.written) lines.push(`  wrote ${k}`);
            return lines.join('\n');
          })
          .join('\n'),
      );
    });

  registerCloudsnapScheduleCommands(cloudsnap);
}
