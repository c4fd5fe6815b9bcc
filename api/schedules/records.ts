/**
 * Schedule policies and cloud backup schedules kept in the cluster store (so every node sees the same ones and they
 * survive restarts): create, list, inspect, update, delete, with the checks that need other records.
 */
import { randomUUID } from 'node:crypto';
import { FerryError } from '../../common/index.js';
import type { ClusterStore, StoreOp } from '../../node/index.js';
import {
  type CloudBackupSchedule,
  POLICIES_PREFIX,
  SCHEDULES_PREFIX,
  type SchedulePolicy,
  type ScheduleState,
  STATE_PREFIX,
} from './types.js';

/** A new policy as a request gives it. */
export type PolicyInput = Pick<SchedulePolicy, 'name' | 'schedules'> & Partial<Pick<SchedulePolicy, 'retention'>>;

/** Schedules deleted together, with their states (to put them back). */
export interface DeletedSchedules {
  schedules: CloudBackupSchedule[];
  states: Map<string, ScheduleState>;
}

/** A new schedule as a request gives it (the volume and credential already resolved to their ids). */
export type ScheduleInput = Omit<CloudBackupSchedule, 'id' | 'owner' | 'create_time'>;

function policyKey(name: string): string {
  return `${POLICIES_PREFIX}${name}`;
}

function scheduleKey(id: string): string {
  return `${SCHEDULES_PREFIX}${id}`;
}

/** Cluster-store key of a schedule's state. */
export function stateKey(id: string): string {
  return `${STATE_PREFIX}${id}`;
}

export class ScheduleRecords {
  /** @param now The clock (epoch ms) used for create and update times. */
  constructor(
    readonly store: ClusterStore,
    private readonly now: () => number = Date.now,
  ) {}

  /** The store's compare-and-set (see ClusterStore). */
  compareAndSet(key: string, expected: unknown, value: unknown): Promise<boolean> {
    return this.store.compareAndSet(key, expected, value);
  }

  private iso(): string {
    return new Date(this.now()).toISOString();
  }

  async createPolicy(input: PolicyInput, owner: string): Promise<SchedulePolicy> {
    const at = this.iso();
    const policy: SchedulePolicy = {
      name: input.name,
      schedules: input.schedules,
      ...(input.retention !== undefined && { retention: input.retention }),
      owner,
      create_time: at,
      update_time: at,
    };
    if (!(await this.compareAndSet(policyKey(input.name), undefined, policy))) {
      throw new FerryError('ALREADY_EXISTS', `schedule policy ${input.name} already exists; update it or pick a name`);
    }
    return policy;
  }

  async listPolicies(): Promise<SchedulePolicy[]> {
    return (await this.store.list<SchedulePolicy>(POLICIES_PREFIX)).map((kv) => kv.value);
  }

  async inspectPolicy(name: string): Promise<SchedulePolicy> {
    const policy = await this.store.get<SchedulePolicy>(policyKey(name));
    if (policy === undefined) {
      throw new FerryError('NOT_FOUND', `no schedule policy ${name}; list them with GET /v1/schedulepolicies`);
    }
    return policy;
  }

  /** Replaces a policy's intervals and retention; its schedules use them from their next run on. */
  async updatePolicy(input: PolicyInput): Promise<SchedulePolicy> {
    const current = await this.inspectPolicy(input.name);
    const { retention: _old, ...kept } = current;
    const next: SchedulePolicy = {
      ...kept,
      schedules: input.schedules,
      ...(input.retention !== undefined && { retention: input.retention }),
      update_time: this.iso(),
    };
    if (!(await this.compareAndSet(policyKey(input.name), current, next))) {
      throw new FerryError('FAILED_PRECONDITION', `schedule policy ${input.name} changed meanwhile; try again`);
    }
    return next;
  }

  /** Deletes a policy; FAILED_PRECONDITION while a schedule uses it. */
  async deletePolicy(name: string): Promise<void> {
    await this.inspectPolicy(name);
    const users = (await this.listSchedules()).filter((s) => s.policy_name === name);
    if (users.length > 0) {
      throw new FerryError(
        'FAILED_PRECONDITION',
        `schedule policy ${name} is used by ${users.length} schedule(s) (${users[0]?.id}); delete those first`,
      );
    }
    await this.store.commit([{ op: 'delete', key: policyKey(name) }]);
  }

  async createSchedule(input: ScheduleInput, owner: string): Promise<CloudBackupSchedule> {
    if (input.policy_name !== undefined) await this.inspectPolicy(input.policy_name);
    const schedule: CloudBackupSchedule = { ...input, id: randomUUID(), owner, create_time: this.iso() };
    await this.store.commit([{ op: 'put', key: scheduleKey(schedule.id), value: schedule }]);
    return schedule;
  }

  /** Replaces what schedule `id` runs; its id, owner and creation time stay (so do its runs' history and backups). */
  async updateSchedule(id: string, input: ScheduleInput): Promise<CloudBackupSchedule> {
    const old = await this.inspectSchedule(id);
    if (input.policy_name !== undefined) await this.inspectPolicy(input.policy_name);
    const schedule: CloudBackupSchedule = { ...input, id, owner: old.owner, create_time: old.create_time };
    await this.store.commit([{ op: 'put', key: scheduleKey(id), value: schedule }]);
    return schedule;
  }

  async listSchedules(): Promise<CloudBackupSchedule[]> {
    return (await this.store.list<CloudBackupSchedule>(SCHEDULES_PREFIX)).map((kv) => kv.value);
  }

  async inspectSchedule(id: string): Promise<CloudBackupSchedule> {
    const schedule = await this.store.get<CloudBackupSchedule>(scheduleKey(id));
    if (schedule === undefined) {
      throw new FerryError(
        'NOT_FOUND',
        `no cloud backup schedule ${id}; list them with GET /v1/cloudbackups/schedules`,
      );
    }
    return schedule;
  }

  /** Deletes a schedule and its state; its backups stay. */
  async deleteSchedule(id: string): Promise<void> {
    await this.inspectSchedule(id);
    const ops: StoreOp[] = [
      { op: 'delete', key: scheduleKey(id) },
      { op: 'delete', key: stateKey(id) },
    ];
    await this.store.commit(ops);
  }

  /**
   * Deletes several schedules and their states in one commit (all or none), and returns what it deleted so that
   * `restoreSchedules` can put it back when the step they were deleted for fails.
   */
  async deleteSchedules(ids: readonly string[]): Promise<DeletedSchedules> {
    const schedules: CloudBackupSchedule[] = [];
    const states = new Map<string, ScheduleState>();
    const ops: StoreOp[] = [];
    for (const id of ids) {
      schedules.push(await this.inspectSchedule(id));
      const state = await this.state(id);
      if (state !== undefined) states.set(id, state);
      ops.push({ op: 'delete', key: scheduleKey(id) }, { op: 'delete', key: stateKey(id) });
    }
    if (ops.length > 0) await this.store.commit(ops);
    return { schedules, states };
  }

  /** Puts back what `deleteSchedules` deleted, in one commit. */
  async restoreSchedules(deleted: DeletedSchedules): Promise<void> {
    const ops: StoreOp[] = [];
    for (const s of deleted.schedules) {
      ops.push({ op: 'put', key: scheduleKey(s.id), value: s });
      const state = deleted.states.get(s.id);
      if (state !== undefined) ops.push({ op: 'put', key: stateKey(s.id), value: state });
    }
    if (ops.length > 0) await this.store.commit(ops);
  }

  /** Every schedule's state, by schedule id. */
  async states(): Promise<Map<string, ScheduleState>> {
    const list = await this.store.list<ScheduleState>(STATE_PREFIX);
    return new Map(list.map((kv) => [kv.key.slice(STATE_PREFIX.length), kv.value]));
  }

  async state(id: string): Promise<ScheduleState | undefined> {
    return this.store.get<ScheduleState>(stateKey(id));
  }
}
