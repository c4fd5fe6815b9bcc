/**
 * restic, the comparison peer of the CloudSnap benchmark. restic 0.14 with its defaults: repository format 2
 * (`--repository-version stable`), compression `auto` (zstd), 16 MiB target packs, content-defined chunks of
 * 512 KiB-8 MiB (1 MiB average), a local cache in a directory of its own (created fresh per repository).
 */
import { spawn } from 'node:child_process';

/** Where a restic repository lives and how to reach it. */
export interface ResticTarget {
  /** `-r` argument: a directory or `s3:http://127.0.0.1:PORT/bucket`. */
  repo: string;
  cacheDir: string;
  env?: Record<string, string>;
}

export interface ResticRun {
  ms: number;
  stdout: string;
}

/** The `--json` summary line of `restic backup`. */
export interface ResticSummary {
  data_added: number;
  total_bytes_processed: number;
  total_duration: number;
  data_blobs: number;
  tree_blobs: number;
  snapshot_id: string;
}

export const RESTIC_PASSWORD = 'ferry-bench';

export function restic(target: ResticTarget, args: readonly string[]): Promise<ResticRun> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = spawn('restic', ['-r', target.repo, '--cache-dir', target.cacheDir, ...args], {
      env: { ...process.env, ...(target.env ?? {}), RESTIC_PASSWORD },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (stdout.length > 1_000_000) stdout = stdout.slice(-100_000);
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    child.on('error', (err) => reject(new Error(`restic: ${err.message} (is /usr/bin/restic installed?)`)));
    child.on('close', (code) => {
      const ms = performance.now() - t0;
      if (code === 0) resolve({ ms, stdout });
      else reject(new Error(`restic ${args.join(' ')} exited ${String(code)}: ${stderr}`));
    });
  });
}

/** `restic backup --json PATH`: time and the summary. */
export async function resticBackup(
  target: ResticTarget,
  path: string,
): Promise<{ ms: number; summary: ResticSummary }> {
  const { ms, stdout } = await restic(target, ['backup', '--json', path]);
  const line = stdout
    .trim()
    .split('\n')
    .reverse()
    .find((l) => l.includes('"message_type":"summary"'));
  if (line === undefined) throw new Error('restic backup printed no summary');
  return { ms, summary: JSON.parse(line) as ResticSummary };
}
