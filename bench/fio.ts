import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** One fio workload through the NBD engine. */
export interface FioJob {
  name: string;
  rw: 'write' | 'read' | 'randwrite' | 'randread';
  bs: string;
  iodepth: number;
}

export interface FioResult {
  /** Bytes per second. */
  bw: number;
  iops: number;
  /** Mean completion latency in microseconds. */
  latUs: number;
  /** 99th percentile completion latency in microseconds. */
  p99Us: number;
}

interface FioJson {
  jobs: Array<
    Record<
      'read' | 'write',
      { bw_bytes: number; iops: number; clat_ns: { mean: number; percentile?: Record<string, number> } }
    >
  >;
}

/** Runs fio with `--ioengine=nbd` against `uri` over the first `size` bytes, time based. */
export async function runFio(uri: string, job: FioJob, size: string, seconds: number): Promise<FioResult> {
  const args = [
    `--name=${job.name}`,
    '--ioengine=nbd',
    `--uri=${uri}`,
    `--rw=${job.rw}`,
    `--bs=${job.bs}`,
    `--iodepth=${job.iodepth}`,
    `--size=${size}`,
    '--time_based',
    `--runtime=${seconds}`,
    '--ramp_time=1',
    '--randrepeat=0',
    '--output-format=json',
  ];
  const { stdout } = await run('fio', args, { maxBuffer: 16 * 1024 * 1024 });
  const parsed = JSON.parse(stdout.slice(stdout.indexOf('{'))) as FioJson;
  const side = job.rw.includes('write') ? 'write' : 'read';
  const r = parsed.jobs[0]?.[side];
  if (r === undefined) throw new Error(`fio printed no ${side} result`);
  return {
    bw: r.bw_bytes,
    iops: r.iops,
    latUs: r.clat_ns.mean / 1000,
    p99Us: (r.clat_ns.percentile?.['99.000000'] ?? Number.NaN) / 1000,
  };
}
