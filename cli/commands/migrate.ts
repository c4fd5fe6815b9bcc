/**
 * `ferry migrate start|status|cutover|cancel`: live migration of volumes to a paired cluster (POST
 * /v1/volumemigrate and its status, cutover and cancel routes). `start --wait` follows the migration to its end.
 */
import type { Command } from 'commander';
import type { MigrateInfoView } from '../../api/index.js';
import type { FerryClient } from '../client.js';
import { clientFor, globalOptions, output } from '../context.js';
import { formatSize, parseList, renderTable } from '../format.js';
import { progressIntervalMs } from './cloudsnap-progress.js';

function progress(m: MigrateInfoView): string {
  if (m.status === 'Done') return `${formatSize(m.bytes_sent)} in ${m.pass} passes`;
  if (m.bytes_total <= 0) return '-';
  const percent = Math.min(100, Math.floor((m.bytes_done * 100) / m.bytes_total));
  const eta = m.eta_seconds !== undefined && m.status === 'Active' ? `, ETA ${m.eta_seconds}s` : '';
  return `pass ${m.pass + 1}: ${formatSize(m.bytes_done)} / ${formatSize(m.bytes_total)} (${percent}%)${eta}`;
}

function line(m: MigrateInfoView): string {
  const held = m.writes_held_ms !== undefined ? `, writes held ${m.writes_held_ms} ms` : '';
  const why = m.error_reason !== undefined ? `: ${m.error_reason}` : '';
  return `migration ${m.task_id} of ${m.local_volume_name} to ${m.pair_name}: ${m.status} ${m.current_stage}, ${progress(m)}${held}${why}`;
}

function table(list: readonly MigrateInfoView[]): string {
  const rows = renderTable(
    ['TASK', 'VOLUME', 'PAIR', 'STATUS', 'STAGE', 'PROGRESS', 'CUTOVER'],
    list.map((m) => [
      m.task_id,
      m.local_volume_name,
      m.pair_name,
      m.status,
      m.current_stage,
      progress(m),
      m.writes_held_ms !== undefined ? `writes held ${m.writes_held_ms} ms` : m.cutover,
    ]),
  );
  // Why each one that did not end Done ended so (or what a Done one left to say).
  const reasons = list
    .filter((m) => m.error_reason !== undefined)
    .map(
      (m) =>
        `${m.task_id}: ${m.error_reason}${m.remote_cleanup === 'pending' ? ' (destination clean-up pending)' : ''}`,
    );
  return reasons.length === 0 ? rows : `${rows}\n\n${reasons.join('\n')}`;
}

async function status(client: FerryClient, taskId?: string): Promise<MigrateInfoView[]> {
  const answer = await client.request<{ migrations: MigrateInfoView[] }>('POST', '/v1/volumemigrate/status', {
    ...(taskId !== undefined && { request: { task_id: taskId } }),
  });
  return answer.migrations;
}

const ENDED = new Set(['Done', 'Failed', 'Aborted']);

/**
 * Polls the migrations until all ended, printing a line on stderr when one changes stage, pass or status, and one
 * every few seconds (FERRY_PROGRESS_SECONDS, default 3) while it moves bytes.
 */
async function follow(client: FerryClient, ids: readonly string[], quiet: boolean): Promise<MigrateInfoView[]> {
  const seen = new Map<string, { key: string; at: number }>();
  const every = progressIntervalMs();
  for (;;) {
    const now = (await status(client)).filter((m) => ids.includes(m.task_id));
    for (const m of now) {
      const key = `${m.status}/${m.current_stage}/${m.pass}`;
      const last = seen.get(m.task_id);
      if (last !== undefined && last.key === key && Date.now() - last.at < every) continue;
      if (!quiet) process.stderr.write(`${line(m)}\n`);
      seen.set(m.task_id, { key, at: Date.now() });
    }
    if (now.length === ids.length && now.every((m) => ENDED.has(m.status))) {
      // In the order the volumes were given (the store lists them newest first, ties in no order).
      return ids.map((id) => now.find((m) => m.task_id === id) as MigrateInfoView);
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

export function registerMigrateCommands(program: Command): void {
  const migrate = program
    .command('migrate')
    .description('moves volumes to a paired cluster while they are in use (admins)');
  migrate
    .command('start <volumes...>')
    .description('starts live migrations: a full copy, passes of changed blocks, then the cutover')
    .requiredOption('--pair <pair>', 'the cluster pair to migrate to (ferry cluster pair list)')
    .option('--cutover <mode>', 'auto (once a pass changes little) or manual (ferry migrate cutover)', 'auto')
    .option('--snapshots <names>', "the volume's snapshots to carry over, comma-separated (one volume)", parseList)
    .option('--wait', 'follow the migrations until they end (exit 1 when one does not end Done)')
    .action(
      async (
        volumes: string[],
        options: { pair: string; cutover: string; wait?: boolean; snapshots?: string[] },
        command: Command,
      ) => {
        const client = clientFor(command);
        const answer = await client.request<{ migrations: MigrateInfoView[] }>('POST', '/v1/volumemigrate', {
          cluster_id: options.pair,
          volumes,
          cutover: options.cutover,
          ...(options.snapshots !== undefined && { snapshots: options.snapshots }),
        });
        let list = answer.migrations;
        if (options.wait === true) {
          list = await follow(
            client,
            list.map((m) => m.task_id),
            globalOptions(command).output === 'json',
          );
          if (list.some((m) => m.status !== 'Done')) process.exitCode = 1;
        }
        output(command, list, () => table(list));
      },
    );
  migrate
    .command('status [task]')
    .description('migrations with their stage, pass, bytes and ETA')
    .action(async (task: string | undefined, _options: unknown, command: Command) => {
      const list = await status(clientFor(command), task);
      output(command, list, () => (list.length === 0 ? 'No migrations.' : table(list)));
    });
  migrate
    .command('cutover <task>')
    .description('cuts over a migration started with --cutover manual')
    .action(async (task: string, _options: unknown, command: Command) => {
      const answer = await clientFor(command).request<{ migration: MigrateInfoView }>(
        'POST',
        '/v1/volumemigrate/cutover',
        { request: { task_id: task } },
      );
      output(command, answer.migration, () => `Cutover asked: ${line(answer.migration)}`);
    });
  migrate
    .command('cancel <task>')
    .description('cancels a migration: the source stays as it was, the destination volume is removed')
    .action(async (task: string, _options: unknown, command: Command) => {
      const answer = await clientFor(command).request<{ migration: MigrateInfoView }>(
        'POST',
        '/v1/volumemigrate/cancel',
        { request: { task_id: task } },
      );
      output(command, answer.migration, () => `Cancel asked: ${line(answer.migration)}`);
    });
}
