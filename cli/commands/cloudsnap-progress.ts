/** How `ferry cloudsnap` shows jobs: a progress bar redrawn in place on a terminal, plain lines elsewhere. */
import type { JobStatus } from '../../api/index.js';
import { formatSize } from '../format.js';

const BAR_WIDTH = 30;

/** `1.5 MiB / 8 MiB (18%)`, or the bytes done while the total is not known yet. */
export function progressText(s: JobStatus): string {
  if (s.bytes_total <= 0) return formatSize(s.bytes_done);
  const percent = Math.min(100, Math.floor((s.bytes_done * 100) / s.bytes_total));
  return `${formatSize(s.bytes_done)} / ${formatSize(s.bytes_total)} (${percent}%)`;
}

/** One line: status, phase, progress and ETA. */
export function statusLine(s: JobStatus): string {
  const phase = s.phase !== undefined && s.status === 'Active' ? ` ${s.phase}` : '';
  const eta = s.eta_seconds !== undefined && s.status === 'Active' ? `, ETA ${s.eta_seconds}s` : '';
  const info = s.info.length > 0 ? `: ${s.info.join('; ')}` : '';
  const checked = s.verify !== undefined ? `, ${s.verify.packs_read}/${s.verify.packs_to_read} packs` : '';
  return `${s.optype} ${s.task_id} ${s.status}${phase}: ${progressText(s)}${checked}${eta}${info}`;
}

/** `[#####.....]  45%  3.6 MiB / 8 MiB  ETA 4s  Active`. */
export function progressBar(s: JobStatus): string {
  const share = s.bytes_total > 0 ? Math.min(1, s.bytes_done / s.bytes_total) : 0;
  const filled = Math.round(share * BAR_WIDTH);
  const bar = `[${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}]`;
  const eta = s.eta_seconds !== undefined ? `  ETA ${s.eta_seconds}s` : '';
  const sizes = s.bytes_total > 0 ? `${formatSize(s.bytes_done)} / ${formatSize(s.bytes_total)}` : '';
  return `${bar} ${String(Math.floor(share * 100)).padStart(3)}%  ${sizes}${eta}  ${s.status}${s.phase ? ` ${s.phase}` : ''}`;
}

/** Seconds between progress lines when the stream is not a terminal: FERRY_PROGRESS_SECONDS, default 3. */
export function progressIntervalMs(env: NodeJS.ProcessEnv = process.env): number {
  const seconds = Number(env.FERRY_PROGRESS_SECONDS ?? '');
  return env.FERRY_PROGRESS_SECONDS !== undefined && Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 3000;
}

/**
 * Returns a status callback that shows progress on `stream`: on a terminal one bar redrawn in place (ended by a
 * newline when the job ends); elsewhere (logs, CI) a plain line whenever the status or phase changes, and one every
 * `everyMs` whatever the job is doing (queued, paused, or moving bytes), so a log never goes quiet while a job runs.
 * `quiet` shows nothing (for `--json`).
 */
export function progressReporter(
  stream: NodeJS.WriteStream,
  quiet: boolean,
  everyMs: number = progressIntervalMs(),
  now: () => number = Date.now,
): (s: JobStatus) => void {
  let last = '';
  let lastAt = 0;
  return (s: JobStatus) => {
    if (quiet) return;
    const ended = ['Done', 'Failed', 'Aborted', 'Stopped'].includes(s.status);
    if (stream.isTTY === true) {
      stream.write(`\r${progressBar(s)}\x1b[K${ended ? '\n' : ''}`);
      return;
    }
    const key = `${s.status} ${s.phase ?? ''}`;
    const at = now();
    if (key !== last || at - lastAt >= everyMs) {
      stream.write(`${statusLine(s)}\n`);
      last = key;
      lastAt = at;
    }
  };
}
