/**
 * The scheduler with a hand-driven clock, a real SQLite cluster store and a fake backup runner: runs at each
 * occurrence and only then, one run for any number of missed occurrences (restart, clock forward), no run and no
 * stall when the clock goes back, one run per occurrence across two nodes, and retention after each run.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BackupJobRequest, JobStatus } from '../../cloudsnap/index.js';
import { SqliteStore } from '../../node/index.js';
import { ManualClock } from './clock.js';
import { ScheduleRecords } from './records.js';
import type { ScheduledBackup, ScheduledBackupRunner } from './runner.js';
import { BackupScheduler } from './scheduler.js';
import type { CloudBackupSchedule, ScheduleInterval } from './types.js';

const HOUR = 3_600_000;
const T0 = Date.parse('2024-03-10T10:00:00Z');

/** Records every submitted backup; each ends Done (or as `fail` says) and becomes a listed backup. */
class FakeRunner implements ScheduledBackupRunner {
  submitted: BackupJobRequest[] = [];
  backups: Array<ScheduledBackup & { volume: string }> = [];
  deleted: string[] = [];
  fail = false;
  constructor(private readonly clock: ManualClock) {}

  async submit(request: BackupJobRequest): Promise<string> {
    this.submitted.push(request);
    return request.task_id ?? 'task';
  }
  async wait(taskId: string): Promise<JobStatus> {
    const request = this.submitted.find((r) => r.task_id === taskId) as BackupJobRequest;
    const id = `b-${this.clock.now()}-${this.backups.length}`;
    if (!this.fail) {
      this.backups.push({
        id,
        created: new Date(this.clock.now()).toISOString(),
        labels: request.labels ?? {},
        volume: request.volume_id,
      });
    }
    return {
      task_id: taskId,
      optype: 'Backup',
      status: this.fail ? 'Failed' : 'Done',
      bytes_done: 0,
      bytes_total: 0,
      src_volume_id: request.volume_id,
      info: this.fail ? ['object store unreachable'] : [],
      credential_id: request.credential_id,
      create_time: '',
      volume_name: request.volume_id,
      ...(this.fail ? {} : { backup_id: id }),
    };
  }
  async list(_credentialId: string, volumeId: string, scheduleId: string): Promise<ScheduledBackup[]> {
    return this.backups.filter((b) => b.volume === volumeId && b.labels['ferry.io/schedule'] === scheduleId);
  }
  async delete(_credentialId: string, backupId: string): Promise<void> {
    this.deleted.push(backupId);
    this.backups = this.backups.filter((b) => b.id !== backupId);
  }
}

let dir: string;
let store: SqliteStore;
let clock: ManualClock;
let runner: FakeRunner;
let records: ScheduleRecords;
const schedulers: BackupScheduler[] = [];

function scheduler(nodeId = 'node-a'): BackupScheduler {
  const s = new BackupScheduler({ records, runner, nodeId, clock });
  schedulers.push(s);
  return s;
}

async function schedule(
  intervals: ScheduleInterval[],
  extra: Partial<CloudBackupSchedule> = {},
): Promise<CloudBackupSchedule> {
  return records.createSchedule({ src_volume_id: 'vol1', credential_id: 'cred', schedules: intervals, ...extra }, '');
}

/** Ticks, then waits for the runs it started. */
async function tick(s: BackupScheduler): Promise<string[]> {
  const { started } = await s.tick();
  await s.idle();
  return started;
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-scheduler-'));
  store = new SqliteStore(join(dir, 'cluster.db'));
  clock = new ManualClock(T0);
  runner = new FakeRunner(clock);
  records = new ScheduleRecords(store, () => clock.now());
});

afterEach(async () => {
  for (const s of schedulers.splice(0)) await s.stop();
  await store.close();
  await rm(dir, { recursive: true, force: true });
});

describe('BackupScheduler', () => {
  it('runs an hourly schedule once per hour, with its labels and a task id per occurrence', async () => {
    const s = scheduler();
    const sched = await schedule([{ periodic: { seconds: 3600 }, retain: 24 }], { labels: { app: 'db' } });
    expect(await tick(s)).toEqual([]);
    clock.advance(HOUR - 1);
    expect(await tick(s)).toEqual([]);
    clock.advance(1);
    expect(await tick(s)).toEqual([sched.id]);
    expect(await tick(s)).toEqual([]); // same occurrence: not again
    clock.advance(HOUR);
    expect(await tick(s)).toEqual([sched.id]);
    expect(runner.submitted).toHaveLength(2);
    expect(runner.submitted[0]).toMatchObject({
      volume_id: 'vol1',
      credential_id: 'cred',
      task_id: `sched-${sched.id}-${T0 + HOUR}`,
      labels: { app: 'db', 'ferry.io/schedule': sched.id, 'ferry.io/intervals': 'periodic-3600' },
    });
    const state = await records.state(sched.id);
    expect(state).toMatchObject({ last_status: 'Done', last_run: new Date(T0 + 2 * HOUR).toISOString() });
  });

  it('after a restart, runs what it missed once, never a burst', async () => {
    const sched = await schedule([{ periodic: { seconds: 3600 }, retain: 24 }]);
    clock.advance(HOUR);
    expect(await tick(scheduler())).toEqual([sched.id]);
    // The node is down for 7 hours; a new scheduler (a new process) starts on the same store.
    clock.advance(7 * HOUR + 5 * 60_000);
    const restarted = scheduler();
    expect(await tick(restarted)).toEqual([sched.id]);
    expect(await tick(restarted)).toEqual([]);
    expect(runner.submitted).toHaveLength(2);
    clock.advance(HOUR);
    expect(await tick(restarted)).toEqual([sched.id]);
  });

  it('a clock jump forward makes one run; a jump back makes none and the next occurrence still runs', async () => {
    const s = scheduler();
    const sched = await schedule([{ daily: { hour: 2, minute: 0 }, retain: 7 }]);
    clock.set(Date.parse('2024-03-20T12:00:00Z')); // ten days forward
    expect(await tick(s)).toEqual([sched.id]);
    clock.set(Date.parse('2024-03-12T12:00:00Z')); // eight days back
    expect(await tick(s)).toEqual([]);
    clock.set(Date.parse('2024-03-13T01:59:00Z'));
    expect(await tick(s)).toEqual([]);
    clock.set(Date.parse('2024-03-13T02:00:00Z'));
    expect(await tick(s)).toEqual([sched.id]);
    expect(runner.submitted).toHaveLength(2);
  });

  it('two nodes ticking together run each occurrence once', async () => {
    const a = scheduler('node-a');
    const b = scheduler('node-b');
    const scheds = await Promise.all(
      Array.from({ length: 10 }, () => schedule([{ periodic: { seconds: 600 }, retain: 3 }])),
    );
    for (let round = 1; round <= 3; round++) {
      clock.advance(600_000);
      const [ra, rb] = await Promise.all([a.tick(), b.tick()]);
      await Promise.all([a.idle(), b.idle()]);
      expect([...ra.started, ...rb.started].sort()).toEqual(scheds.map((x) => x.id).sort());
    }
    expect(runner.submitted).toHaveLength(30);
    expect(new Set(runner.submitted.map((r) => r.task_id)).size).toBe(30);
  });

  it('keeps each interval’s newest `retain` backups and expires the rest through the runner', async () => {
    const s = scheduler();
    const sched = await schedule([{ periodic: { seconds: 3600 }, retain: 3 }]);
    for (let i = 0; i < 6; i++) {
      clock.advance(HOUR);
      await tick(s);
    }
    expect(runner.backups.map((b) => b.created)).toEqual([4, 5, 6].map((h) => new Date(T0 + h * HOUR).toISOString()));
    expect(runner.deleted).toHaveLength(3);
    expect((await records.state(sched.id))?.last_expired).toBe(1);
  });

  it('GFS rules of a policy keep a daily backup next to the hourly ones', async () => {
    const s = scheduler();
    await records.createPolicy(
      { name: 'gfs', schedules: [{ periodic: { seconds: 3600 }, retain: 2 }], retention: { daily: 3 } },
      'alice',
    );
    await schedule([], { policy_name: 'gfs' });
    clock.set(Date.parse('2024-03-10T23:30:00Z'));
    await tick(s); // the missed occurrences since 10:00 make one run, at 23:30
    for (let i = 0; i < 30; i++) {
      clock.advance(HOUR);
      await tick(s);
    }
    // 31 runs from 03-10 23:30 to 03-12 05:30. Hourly retain 2 keeps 04:30 and 05:30 of the 12th; daily 3 keeps the
    // newest of each of the last three days: 03-12 05:30, 03-11 23:30, 03-10 23:30.
    expect(runner.backups.map((b) => b.created).sort()).toEqual([
      '2024-03-10T23:30:00.000Z',
      '2024-03-11T23:30:00.000Z',
      '2024-03-12T04:30:00.000Z',
      '2024-03-12T05:30:00.000Z',
    ]);
    expect(runner.deleted).toHaveLength(27);
  });

  it('a failed backup records the failure and expires nothing', async () => {
    const s = scheduler();
    const sched = await schedule([{ periodic: { seconds: 3600 }, retain: 1 }]);
    clock.advance(HOUR);
    await tick(s);
    runner.fail = true;
    clock.advance(HOUR);
    await tick(s);
    expect(runner.backups).toHaveLength(1);
    expect(runner.deleted).toEqual([]);
    expect(await records.state(sched.id)).toMatchObject({
      last_status: 'Failed',
      last_error: 'object store unreachable',
    });
  });

  it('the timer loop wakes at the next run and stops on stop()', async () => {
    const s = scheduler();
    await schedule([{ periodic: { seconds: 3600 }, retain: 1 }]);
    s.start();
    clock.advance(0);
    await new Promise((r) => setTimeout(r, 50));
    clock.advance(HOUR);
    await new Promise((r) => setTimeout(r, 50));
    await s.idle();
    expect(runner.submitted).toHaveLength(1);
    await s.stop();
    expect(clock.pending).toBe(0);
    clock.advance(HOUR);
    await new Promise((r) => setTimeout(r, 20));
    expect(runner.submitted).toHaveLength(1);
  });
});
