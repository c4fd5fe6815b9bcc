import { describe, expect, it } from 'vitest';
import type { JobStatus } from '../../api/index.js';
import { progressIntervalMs, progressReporter } from './cloudsnap-progress.js';

function job(status: JobStatus['status'], done: number, phase?: JobStatus['phase']): JobStatus {
  return {
    task_id: 't1',
    optype: 'Backup',
    status,
    bytes_done: done,
    bytes_total: 100 * 1024 * 1024,
    src_volume_id: 'v1',
    info: [],
    credential_id: 'c1',
    create_time: '2026-12-06T00:00:00.000Z',
    volume_name: 'pgdata',
    ...(phase !== undefined && { phase }),
  };
}

/** A stream that is not a terminal (a log file, a CI runner's pipe), collecting what is written. */
function logStream(): { stream: NodeJS.WriteStream; lines: () => string[] } {
  let text = '';
  const stream = {
    isTTY: false,
    write: (chunk: string) => {
      text += chunk;
      return true;
    },
  } as unknown as NodeJS.WriteStream;
  return { stream, lines: () => text.split('\n').filter((l) => l !== '') };
}

describe('progress off a terminal', () => {
  it('prints a line every interval whatever the job does, and one at each change of status or phase', () => {
    let clock = 0;
    const { stream, lines } = logStream();
    const report = progressReporter(stream, false, 3000, () => clock);
    // Polled every 250 ms: 20 s queued behind other jobs, 10 s paused, 5 s moving bytes, then done.
    const steps: JobStatus[] = [
      ...Array.from({ length: 80 }, () => job('Queued', 0)),
      ...Array.from({ length: 40 }, () => job('Paused', 0)),
      ...Array.from({ length: 20 }, (_, i) => job('Active', i * 1024 * 1024, 'transferring')),
      job('Done', 100 * 1024 * 1024),
    ];
    for (const s of steps) {
      report(s);
      clock += 250;
    }
    const out = lines();
    expect(out.filter((l) => l.startsWith('Backup t1 Queued:'))).toHaveLength(7); // at 0, 3, 6, ... 18 s
    expect(out.filter((l) => l.startsWith('Backup t1 Paused:'))).toHaveLength(4); // at 20, 23, 26, 29 s
    expect(out.filter((l) => l.startsWith('Backup t1 Active transferring:'))).toHaveLength(2); // at 30, 33 s
    expect(out.at(-1)).toBe('Backup t1 Done: 100 MiB / 100 MiB (100%)');
  });

  it('prints nothing when quiet (--json), and redraws one bar on a terminal', () => {
    const { stream, lines } = logStream();
    progressReporter(stream, true, 3000, () => 0)(job('Queued', 0));
    expect(lines()).toEqual([]);
    let text = '';
    const tty = {
      isTTY: true,
      write: (c: string) => {
        text += c;
        return true;
      },
    } as unknown as NodeJS.WriteStream;
    const report = progressReporter(tty, false, 3000, () => 0);
    report(job('Active', 50 * 1024 * 1024, 'transferring'));
    report(job('Done', 100 * 1024 * 1024));
    expect(text.split('\n')).toHaveLength(2);
    expect(text).toContain(' 50%  50 MiB / 100 MiB');
  });

  it('takes the interval from FERRY_PROGRESS_SECONDS, default 3 s', () => {
    expect(progressIntervalMs({})).toBe(3000);
    expect(progressIntervalMs({ FERRY_PROGRESS_SECONDS: '10' })).toBe(10_000);
    expect(progressIntervalMs({ FERRY_PROGRESS_SECONDS: '0.5' })).toBe(500);
    expect(progressIntervalMs({ FERRY_PROGRESS_SECONDS: 'soon' })).toBe(3000);
  });
});
