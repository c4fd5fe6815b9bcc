/**
 * Schedules are cluster objects: two nodes' schedulers, each with its own client of one real etcd and a recording
 * backup runner, on one hand-driven clock. The node that created a schedule runs an occurrence; once it is gone the
 * other node runs the next one, also when the first died holding the schedule's claim lease (the etcd lease frees it).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { BackupJobRequest, JobStatus } from '../../cloudsnap/index.js';
import { connectEtcd, type EtcdStore, type Watch } from '../../node/index.js';
import { type EtcdServer, startEtcd } from '../../test/support/etcd.js';
import { ManualClock } from './clock.js';
import { Leases } from './lease.js';
import { ScheduleRecords, stateKey } from './records.js';
import type { ScheduledBackup, ScheduledBackupRunner } from './runner.js';
import { BackupScheduler } from './scheduler.js';
import { LEASES_PREFIX, type ScheduleState } from './types.js';

const HOUR = 3_600_000;
const T0 = Date.parse('2025-06-01T08:00:00Z');

/** Every backup a node's scheduler submitted; each ends Done. */
class RecordingRunner implements ScheduledBackupRunner {
  readonly submitted: BackupJobRequest[] = [];
  async submit(request: BackupJobRequest): Promise<string> {
    this.submitted.push(request);
    return request.task_id ?? 'task';
  }
  async wait(taskId: string): Promise<JobStatus> {
    const request = this.submitted.find((r) => r.task_id === taskId);
    return {
      task_id: taskId,
      optype: 'Backup',
      status: 'Done',
      bytes_done: 0,
      bytes_total: 0,
      src_volume_id: request?.volume_id ?? '',
      info: [],
      credential_id: request?.credential_id ?? '',
      create_time: '',
      volume_name: request?.volume_id ?? '',
      backup_id: `backup-of-${taskId}`,
    };
  }
  async list(): Promise<ScheduledBackup[]> {
    return [];
  }
  async delete(): Promise<void> {}
}

interface Node {
  store: EtcdStore;
  records: ScheduleRecords;
  runner: RecordingRunner;
  scheduler: BackupScheduler;
}

let etcd: EtcdServer;
const open: Node[] = [];

/** A node; `holds` lists the volumes it may back up (default: every one). */
async function node(id: string, clock: ManualClock, holds?: readonly string[]): Promise<Node> {
  const store = await connectEtcd([etcd.url]);
  const records = new ScheduleRecords(store, () => clock.now());
  const runner = new RecordingRunner();
  const scheduler = new BackupScheduler({
    records,
    runner,
    nodeId: id,
    clock,
    leaseMs: 1000,
    ...(holds !== undefined && { canRun: async (volumeId: string) => holds.includes(volumeId) }),
  });
  const n = { store, records, runner, scheduler };
  open.push(n);
  return n;
}

/** The node is gone: its scheduler stops and its store client closes (a process that ended). */
async function gone(n: Node): Promise<void> {
  open.splice(open.indexOf(n), 1);
  await n.scheduler.stop();
  await n.store.close();
}

async function tick(n: Node): Promise<string[]> {
  const { started } = await n.scheduler.tick();
  await n.scheduler.idle();
  return started;
}

async function deleted(key: string, watch: Watch): Promise<void> {
  for await (const e of watch) if (e.type === 'delete' && e.key === key) return;
}

beforeAll(async () => {
  etcd = await startEtcd();
});

afterEach(async () => {
  for (const n of open.splice(0)) {
    await n.scheduler.stop();
    await n.store.close();
  }
});

afterAll(async () => {
  await etcd?.destroy();
});

describe('a backup schedule in a cluster', () => {
  it('keeps running when the node that created it is gone: the other node runs the next occurrence', async () => {
    const clock = new ManualClock(T0);
    const [a, b] = [await node('node-a', clock), await node('node-b', clock)];
    const schedule = await a.records.createSchedule(
      { src_volume_id: 'vol-1', credential_id: 'cred-1', schedules: [{ periodic: { seconds: 3600 }, retain: 5 }] },
      'alice',
    );
    clock.advance(HOUR);
    expect(await tick(a)).toEqual([schedule.id]);
    expect(await tick(b)).toEqual([]); // the same occurrence runs once in the cluster

    await gone(a);
    clock.advance(HOUR);
    expect(await tick(b)).toEqual([schedule.id]);
    expect(b.runner.submitted.map((r) => r.task_id)).toEqual([`sched-${schedule.id}-${T0 + 2 * HOUR}`]);
    expect(b.runner.submitted[0]).toMatchObject({ volume_id: 'vol-1', credential_id: 'cred-1' });
    const state = await b.store.get<ScheduleState>(stateKey(schedule.id));
    expect(state).toMatchObject({ last_status: 'Done', last_run: new Date(T0 + 2 * HOUR).toISOString() });
  });

  it('an occurrence is run by a node that may back up the volume, whichever node ticks first', async () => {
    const clock = new ManualClock(T0);
    const [a, b] = [await node('node-a', clock, []), await node('node-b', clock, ['vol-3'])];
    const schedule = await a.records.createSchedule(
      { src_volume_id: 'vol-3', credential_id: 'cred-1', schedules: [{ periodic: { seconds: 3600 }, retain: 5 }] },
      'alice',
    );
    clock.advance(HOUR);
    expect(await tick(a)).toEqual([]); // A holds no replica of vol-3: it leaves the occurrence unclaimed
    expect(await tick(b)).toEqual([schedule.id]);
    expect(a.runner.submitted).toEqual([]);
    expect(b.runner.submitted).toHaveLength(1);
  });

  it('a node that died holding the claim lease holds the schedule back only until etcd expires that lease', async () => {
    const clock = new ManualClock(T0);
    const [a, b] = [await node('node-a', clock), await node('node-b', clock)];
    const schedule = await a.records.createSchedule(
      { src_volume_id: 'vol-2', credential_id: 'cred-1', schedules: [{ periodic: { seconds: 3600 }, retain: 5 }] },
      'alice',
    );
    clock.advance(HOUR);
    // A takes the schedule's claim lease (as a claim does) and dies before giving it back.
    const leaseKey = `${LEASES_PREFIX}schedule-${schedule.id}`;
    expect(await new Leases(a.store, 'node-a').acquire(`schedule-${schedule.id}`, 1000)).toBe(true);
    const watch = await b.store.watch(leaseKey);
    await gone(a);
    // A dead process revokes nothing: the lease key stays until etcd expires its lease.
    expect(await b.store.get(leaseKey)).toMatchObject({ holder: 'node-a' });
    expect(await tick(b)).toEqual([]); // still A's: nothing runs twice
    expect(b.runner.submitted).toEqual([]);
    await deleted(leaseKey, watch);
    await watch.close();
    expect(await tick(b)).toEqual([schedule.id]);
    expect(b.runner.submitted).toHaveLength(1);
  });
});
