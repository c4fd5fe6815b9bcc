/** Job records in the cluster store, one per task under `/ferry/jobs/<task_id>`. */
import type { ClusterStore } from '../../node/index.js';
import { isFinal, JOBS_PREFIX, type JobStatus, RESTART_MESSAGE } from './types.js';

/** Cluster-store key of a job. */
export function jobKey(taskId: string): string {
  return `${JOBS_PREFIX}${taskId}`;
}

export class JobStore {
  constructor(private readonly store: ClusterStore) {}

  async get(taskId: string): Promise<JobStatus | undefined> {
    return this.store.get<JobStatus>(jobKey(taskId));
  }

  /** Every job record, in task-id order. */
  async list(): Promise<JobStatus[]> {
    return (await this.store.list<JobStatus>(JOBS_PREFIX)).map((kv) => kv.value);
  }

  async put(job: JobStatus): Promise<void> {
    await this.store.commit([{ op: 'put', key: jobKey(job.task_id), value: job }]);
  }

  /**
   * At start-up: jobs a dead process of this node left unfinished (or records naming no node) end Failed (nothing
   * runs them any more), and finished records
   * beyond the newest `keepFinished` are removed. Returns the jobs it failed.
   */
  async recover(keepFinished: number, nodeId: string): Promise<JobStatus[]> {
    const all = await this.list();
    const now = new Date().toISOString();
    const failed: JobStatus[] = [];
    for (const job of all) {
      if (isFinal(job)) continue;
      // Another live node's job (a cluster shares the store): not this restart's to end.
      if (job.node_id !== undefined && job.node_id !== nodeId) continue;
      const { eta_seconds: _eta, phase: _phase, ...rest } = job;
      failed.push({ ...rest, status: 'Failed', completed_time: now, info: [RESTART_MESSAGE] });
    }
    const finished = [...all.filter(isFinal), ...failed].sort((a, b) =>
      (a.completed_time ?? a.create_time).localeCompare(b.completed_time ?? b.create_time),
    );
    const drop = finished.slice(0, Math.max(0, finished.length - keepFinished));
    const dropped = new Set(drop.map((j) => j.task_id));
    await this.store.commit([
      ...failed
        .filter((j) => !dropped.has(j.task_id))
        .map((j) => ({ op: 'put' as const, key: jobKey(j.task_id), value: j })),
      ...drop.map((j) => ({ op: 'delete' as const, key: jobKey(j.task_id) })),
    ]);
    return failed;
  }
}
