/** `ferry cloudsnap verify`: starts a verify job; with --wait follows it and prints what it found. */
import { type Command, InvalidArgumentError } from 'commander';
import type { JobStatus, VerifyJobReport, VerifyProblem } from '../../api/index.js';
import { clientFor, globalOptions, output } from '../context.js';
import { formatSize } from '../format.js';
import { waitForJob } from './cloudsnap-api.js';
import { progressReporter } from './cloudsnap-progress.js';

/** Progress lines when stderr is not a terminal: one every few seconds while the verify runs. */
const LINE_EVERY_MS = 5000;

interface VerifyOptions {
  cred: string;
  backup?: string;
  dataPercent?: number;
  taskId?: string;
  wait?: boolean;
}

function parsePercent(text: string): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || n < 0 || n > 100) {
    throw new InvalidArgumentError(`"${text}" is not a percentage from 0 to 100`);
  }
  return n;
}

/** `12 packs of 40 read (180 MiB), 3,000 chunks checked`: what a verify has checked so far. */
export function verifyProgressText(r: VerifyJobReport): string {
  return `${r.packs_read}/${r.packs_to_read} packs read (${formatSize(r.bytes_read)} of ${formatSize(r.bytes_to_read)}), ${r.chunks_read}/${r.chunks_unique} chunks checked`;
}

/** Where a problem lies in the backups: `backup B: bytes 0-64 KiB, ...`, a few ranges per backup. */
function affects(p: VerifyProblem): string {
  if (p.backups.length === 0) return 'no backup’s data (the object is rebuilt or not needed)';
  const parts = p.backups.map((b) => {
    const ranges = p.ranges.filter((r) => r.backup === b);
    if (ranges.length === 0) return `backup ${b}`;
    const shown = ranges.slice(0, 4).map((r) => `${formatSize(r.offset)}+${formatSize(r.length)}`);
    const more = ranges.length > 4 ? `, +${ranges.length - 4} more` : '';
    return `backup ${b} (volume bytes ${shown.join(', ')}${more})`;
  });
  const chunks = p.chunks > 0 ? `; ${p.chunks} chunk${p.chunks === 1 ? '' : 's'}` : '';
  return `${parts.join('; ')}${p.ranges_truncated === true ? ' (more ranges not listed)' : ''}${chunks}`;
}

/** A verify job's report for people. */
export function verifyReportText(r: VerifyJobReport): string {
  const head =
    `Verified ${r.backups} backups: ${r.pages} manifest pages, ${r.chunks} chunk references (${r.chunks_unique} distinct), ` +
    `${r.index_objects} index objects, ${r.packs} packs; ${r.data_percent}% of the data read: ${verifyProgressText(r)}`;
  if (r.problems_total === 0) return `${head}: no problems`;
  const lines = [`${head}: ${r.problems_total} problem${r.problems_total === 1 ? '' : 's'}`];
  r.problems.forEach((p, i) => {
    lines.push(`${i + 1}. ${p.kind} ${p.object}: ${p.message}`);
    lines.push(`   affects ${affects(p)}`);
  });
  if (r.problems.length < r.problems_total) {
    lines.push(`(${r.problems_total - r.problems.length} more not listed; verify one backup at a time with --backup)`);
  }
  lines.push('See "When verify reports damage" in docs/OPERATIONS.md.');
  return lines.join('\n');
}

/** Adds `cloudsnap verify` to `cloudsnap`. */
export function registerCloudsnapVerifyCommand(cloudsnap: Command): void {
  cloudsnap
    .command('verify')
    .description(
      'check backups against the bucket: records, manifest pages, index objects, packs; with --data-percent, read packs back and check every chunk in them; returns a task id at once',
    )
    .requiredOption('--cred <credential>', 'credential id or name')
    .option('--backup <id>', 'only this backup (default: all)')
    .option(
      '--data-percent <n>',
      'also read this share of the packs whole and check each chunk (0-100, default 0)',
      parsePercent,
    )
    .option('--task-id <id>', 'idempotency key: asking again with it returns the same job')
    .option('--wait', 'wait until the verify ends (progress on stderr), print what it found; exit 1 on any problem')
    .action(async (options: VerifyOptions, command: Command) => {
      const client = clientFor(command);
      const response = await client.request<{ task_id: string }>('POST', '/v1/cloudbackups/verify', {
        credential_id: options.cred,
        ...(options.backup !== undefined && { backup_id: options.backup }),
        ...(options.dataPercent !== undefined && { data_percent: options.dataPercent }),
        ...(options.taskId !== undefined && { task_id: options.taskId }),
      });
      if (options.wait !== true) {
        output(
          command,
          response,
          () => `Verify started: task ${response.task_id} (\`ferry cloudsnap status ${response.task_id}\`)`,
        );
        return;
      }
      const quiet = globalOptions(command).json === true;
      // Not on a terminal, a line every few seconds: a verify can run for hours into a log.
      const report = progressReporter(process.stderr, quiet, LINE_EVERY_MS);
      const final: JobStatus = await waitForJob(client, response.task_id, report);
      const found = final.verify;
      if (final.status !== 'Done' || found === undefined) {
        if (quiet) output(command, final, () => '');
        const why = final.info.length > 0 ? `: ${final.info.join('; ')}` : '';
        throw new Error(`verify task ${final.task_id} ended ${final.status}${why}`);
      }
      output(command, final, () => verifyReportText(found));
      if (found.problems_total > 0) {
        throw new Error(`verify found ${found.problems_total} problem${found.problems_total === 1 ? '' : 's'}`);
      }
    });
}
