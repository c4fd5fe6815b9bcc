/**
 * The backup scheduler of a node: one timer, set for the earliest next run of any schedule (at most `maxSleepMs`
 * ahead, so clock jumps and schedules added by other nodes are noticed). At each tick, each schedule whose latest
 * occurrence it has not yet run is claimed under a lease in the cluster store; the claim records the run with
 * compare-and-set, so two nodes never run the same occurrence. A claimed run queues a backup job (task id
 * `sched-<schedule>-<time>`), waits for it, then applies retention: each interval's `retain` (newest N of the
 * backups that interval fired) united with the GFS rules, expiring the rest through CloudBackups' safe delete.
 * Missed occurrences (node down, clock jumped forward) make one run at the next tick, never a burst. In a cluster any
 * node runs any schedule (the one that created it may be gone); `canRun` keeps a node to the volumes it can back up.
 */
import { planRetention, type RetentionRules } from '../../cloudsnap/index.js';
import { type Clock, systemClock, type TimerHandle } from './clock.js';
import { Leases } from './lease.js';
import { dueIntervals, intervalKey, nextRun, rewoundFires } from './next-run.js';
import { type ScheduleRecords, stateKey } from './records.js';
import type { ScheduledBackupRunner } from './runner.js';
import {
  type CloudBackupSchedule,
  INTERVALS_LABEL,
  SCHEDULE_LABEL,
  type ScheduleInterval,
  type SchedulePolicy,
  type ScheduleState,
} from './types.js';

export type SchedulerLog = (level: 'info' | 'error', msg: string, fields: Record<string, unknown>) => void;

export interface BackupSchedulerOptions {
  records: ScheduleRecords;
  runner: ScheduledBackupRunner;
  /** This node's id (the lease holder). */
  nodeId: string;
  /** Time and timers; default the system clock. */
  clock?: Clock;
  /** Longest sleep between two ticks; default 60 000 ms. */
  maxSleepMs?: number;
  /** Life of the claim lease of one schedule (a cluster-store lease, whole seconds); default 30 000 ms. */
  leaseMs?: number;
  /** Where runs and failures are logged; default nowhere. */
  log?: SchedulerLog;
  /**
   * Whether this node may run a backup of the volume (in a cluster: it holds a replica of it, or the volume is
   * attached here). A schedule whose volume this node may not back up is left to a node that may: the occurrence
   * stays unclaimed here. A rejection is logged and counts as no. Default: every volume (a node alone).
   */
  canRun?: (volumeId: string) => Promise<boolean>;
}

/** What a schedule runs: its intervals and its retention rule sets. */
interface Effective {
  intervals: ScheduleInterval[];
  gfs: RetentionRules;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export class BackupScheduler {
  private readonly clock: Clock;
  private readonly leases: Leases;
  private readonly maxSleepMs: number;
  private readonly leaseMs: number;
  private readonly log: SchedulerLog;
  private timer: TimerHandle | undefined;
  private ticking: Promise<unknown> = Promise.resolve();
  /** Set by stop(): no more ticks, and runs still waiting for their job skip retention. */
  private stopped = false;
  private started = false;
  private readonly inflight = new Set<Promise<void>>();

  constructor(private readonly options: BackupSchedulerOptions) {
    this.clock = options.clock ?? systemClock;
    this.leases = new Leases(options.records.store, options.nodeId);
    this.maxSleepMs = options.maxSleepMs ?? 60_000;
    this.leaseMs = options.leaseMs ?? 30_000;
    this.log = options.log ?? (() => undefined);
  }

  /** Starts ticking: the first tick runs now (it runs what was missed while the node was down, once). */
  start(): void {
    this.started = true;
    this.poke();
  }

  /** Ticks as soon as possible (after a schedule or policy changed). */
  poke(): void {
    if (this.stopped || !this.started) return;
    this.timer?.cancel();
    this.timer = this.clock.setTimer(() => void this.loop(), 0);
  }

  /** Stops the timer and waits for a tick in progress. Runs already queued end with the job manager. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = undefined;
    await this.ticking.catch(() => undefined);
  }

  /** Resolves when no run (backup plus retention) started by this scheduler is in progress. */
  async idle(): Promise<void> {
    while (this.inflight.size > 0) await Promise.all([...this.inflight]);
  }

  private async loop(): Promise<void> {
    if (this.stopped) return;
    let wakeAt: number | undefined;
    const tick = this.tick().then((result) => {
      wakeAt = result.nextRun;
    });
    this.ticking = tick;
    try {
      await tick;
    } catch (err: unknown) {
      this.log('error', 'scheduler tick failed', { error: messageOf(err) });
    }
    if (this.stopped) return;
    const now = this.clock.now();
    const sleep = Math.min(this.maxSleepMs, Math.max(0, (wakeAt ?? Number.POSITIVE_INFINITY) - now));
    this.timer?.cancel();
    this.timer = this.clock.setTimer(() => void this.loop(), sleep);
  }

  /**
   * One pass over every schedule: claims and starts the due ones. Resolves with the ids of the schedules it started
   * and the earliest next run of any schedule. Exposed for tests (which drive time by hand).
   */
  async tick(): Promise<{ started: string[]; nextRun: number | undefined }> {
    const now = this.clock.now();
    const { records } = this.options;
    const [schedules, policies, states] = await Promise.all([
      records.listSchedules(),
      records.listPolicies(),
      records.states(),
    ]);
    const byName = new Map(policies.map((p) => [p.name, p]));
    const started: string[] = [];
    let next: number | undefined;
    for (const schedule of schedules) {
      const effective = this.effective(schedule, byName);
      if (effective === undefined) continue;
      const anchor = Date.parse(schedule.create_time);
      const state = await this.rewind(schedule.id, states.get(schedule.id), effective.intervals, anchor, now);
      const due = dueIntervals(effective.intervals, state?.last_fired ?? {}, anchor, now);
      if (due.length > 0 && (await this.mayRun(schedule))) {
        const claimed = await this.claim(schedule, effective.intervals, anchor, now);
        if (claimed !== undefined) {
          started.push(schedule.id);
          const run = this.run(schedule, effective, claimed, now).catch((err: unknown) => {
            this.log('error', 'scheduled backup failed', { schedule: schedule.id, error: messageOf(err) });
          });
          this.inflight.add(run);
          void run.finally(() => this.inflight.delete(run));
        }
      }
      const t = nextRun(effective.intervals, anchor, now);
      if (t !== undefined && (next === undefined || t < next)) next = t;
    }
    return { started, nextRun: next };
  }

  /** Whether this node may back up the schedule's volume (`canRun`); a failure to tell counts as no. */
  private async mayRun(schedule: CloudBackupSchedule): Promise<boolean> {
    const { canRun } = this.options;
    if (canRun === undefined) return true;
    try {
      return await canRun(schedule.src_volume_id);
    } catch (err: unknown) {
      this.log('error', 'cannot tell whether this node may back up the volume', {
        schedule: schedule.id,
        volume: schedule.src_volume_id,
        error: messageOf(err),
      });
      return false;
    }
  }

  /** After the clock went back: records the rewound fire times (see `rewoundFires`) and returns the new state. */
  private async rewind(
    id: string,
    state: ScheduleState | undefined,
    intervals: readonly ScheduleInterval[],
    anchor: number,
    now: number,
  ): Promise<ScheduleState | undefined> {
    const rewound = rewoundFires(intervals, state?.last_fired ?? {}, anchor, now);
    if (rewound === undefined) return state;
    const next: ScheduleState = { ...(state ?? {}), last_fired: rewound };
    this.log('info', 'clock went back: schedule rewound', { schedule: id, last_fired: rewound });
    // A lost race means another node rewound (or ran) it: its record wins and is read at the claim.
    await this.options.records.compareAndSet(stateKey(id), state, next);
    return next;
  }

  /** The intervals and GFS rules a schedule runs with (its policy's, when it names one). */
  private effective(
    schedule: CloudBackupSchedule,
    policies: ReadonlyMap<string, SchedulePolicy>,
  ): Effective | undefined {
    let intervals = schedule.schedules;
    let gfs: RetentionRules = { ...(schedule.retention ?? {}) };
    if (schedule.policy_name !== undefined) {
      const policy = policies.get(schedule.policy_name);
      if (policy === undefined) return undefined;
      intervals = policy.schedules;
      if (schedule.retention === undefined) gfs = { ...(policy.retention ?? {}) };
    }
    if (schedule.max_backups !== undefined && schedule.max_backups > 0) {
      gfs.last = Math.max(gfs.last ?? 0, schedule.max_backups);
    }
    if (schedule.retention_days !== undefined && schedule.retention_days > 0) {
      gfs.within_days = Math.max(gfs.within_days ?? 0, schedule.retention_days);
    }
    return { intervals, gfs };
  }

  /**
   * Claims the due intervals of a schedule for this node: under the schedule's lease, re-reads its state and records
   * the run with compare-and-set. Undefined when another node got there first (or nothing is due any more).
   */
  private async claim(
    schedule: CloudBackupSchedule,
    intervals: readonly ScheduleInterval[],
    anchor: number,
    now: number,
  ): Promise<ScheduleInterval[] | undefined> {
    const lease = `schedule-${schedule.id}`;
    if (!(await this.leases.acquire(lease, this.leaseMs))) return undefined;
    try {
      const store = this.options.records.store;
      const current = await store.get<ScheduleState>(stateKey(schedule.id));
      const due = dueIntervals(intervals, current?.last_fired ?? {}, anchor, now);
      if (due.length === 0) return undefined;
      const at = new Date(now).toISOString();
      const fired = Object.fromEntries(due.map((i) => [intervalKey(i), at]));
      const { last_error: _e, last_task_id: _t, last_expired: _x, ...rest } = current ?? { last_fired: {} };
      const next: ScheduleState = {
        ...rest,
        last_fired: { ...(current?.last_fired ?? {}), ...fired },
        last_run: at,
        last_status: 'Queued',
      };
      return (await this.options.records.compareAndSet(stateKey(schedule.id), current, next)) ? due : undefined;
    } finally {
      await this.leases.release(lease);
    }
  }

  /** Records what happened to a run (read-modify-compare-and-set; a few tries against concurrent writers). */
  private async note(id: string, change: Partial<ScheduleState>): Promise<void> {
    const store = this.options.records.store;
    for (let attempt = 0; attempt < 5; attempt++) {
      const current = await store.get<ScheduleState>(stateKey(id));
      if (current === undefined) return; // the schedule was deleted
      if (await this.options.records.compareAndSet(stateKey(id), current, { ...current, ...change })) return;
    }
  }

  private async run(
    schedule: CloudBackupSchedule,
    effective: Effective,
    due: readonly ScheduleInterval[],
    now: number,
  ): Promise<void> {
    const { runner } = this.options;
    const labels = {
      ...(schedule.labels ?? {}),
      [SCHEDULE_LABEL]: schedule.id,
      [INTERVALS_LABEL]: due.map(intervalKey).join(','),
    };
    let taskId: string;
    try {
      taskId = await runner.submit({
        volume_id: schedule.src_volume_id,
        credential_id: schedule.credential_id,
        task_id: `sched-${schedule.id}-${now}`,
        labels,
        ...(schedule.full === true && { full: true }),
      });
    } catch (err: unknown) {
      await this.note(schedule.id, { last_status: 'Failed', last_error: messageOf(err) });
      throw err;
    }
    this.log('info', 'scheduled backup started', { schedule: schedule.id, task_id: taskId, intervals: labels });
    await this.note(schedule.id, { last_task_id: taskId });
    const final = await runner.wait(taskId);
    if (final.status !== 'Done') {
      await this.note(schedule.id, { last_status: final.status, last_error: final.info.join('; ') });
      return;
    }
    if (this.stopped) return;
    const expired = await this.expire(schedule, effective);
    await this.note(schedule.id, { last_status: 'Done', last_expired: expired });
    this.log('info', 'scheduled backup done', { schedule: schedule.id, backup_id: final.backup_id, expired });
  }

  /** Applies retention to the schedule's backups; returns how many it expired. */
  private async expire(schedule: CloudBackupSchedule, effective: Effective): Promise<number> {
    const { runner } = this.options;
    const backups = await runner.list(schedule.credential_id, schedule.src_volume_id, schedule.id);
    const items = backups.map((b) => ({ id: b.id, time: b.created }));
    const keep = new Set<string>();
    for (const interval of effective.intervals) {
      const key = intervalKey(interval);
      const fired = backups
        .filter((b) => (b.labels[INTERVALS_LABEL] ?? '').split(',').includes(key))
        .map((b) => ({ id: b.id, time: b.created }));
      for (const k of planRetention(fired, [{ last: interval.retain }]).keep) keep.add(k.id);
    }
    if (Object.values(effective.gfs).some((n) => (n ?? 0) > 0)) {
      for (const k of planRetention(items, [effective.gfs], this.clock.now()).keep) keep.add(k.id);
    }
    let expired = 0;
    for (const b of backups) {
      if (keep.has(b.id)) continue;
      try {
        await runner.delete(schedule.credential_id, b.id);
        expired++;
      } catch (err: unknown) {
        this.log('error', 'retention could not expire a backup', { backup_id: b.id, error: messageOf(err) });
      }
    }
    return expired;
  }
}
