/**
 * Migrations in the cluster store, `/ferry/migrations/<task id>`: what each one moves, where it is and who runs it.
 * Any node answers status from them; a cancel or a cutover asked on another node is a flag here that the running
 * node sees at its next progress update.
 */
import type { ClusterStore } from '../../node/index.js';

export const MIGRATIONS_PREFIX = '/ferry/migrations/';

/** InitialCopy: the allocated data; Incremental: changed blocks, pass after pass; AwaitingCutover: a manual cutover
 * not asked yet (passes go on to keep the delta small); Cutover: writes held, the last delta, the switch; Done. */
export type MigrationStage = 'InitialCopy' | 'Incremental' | 'AwaitingCutover' | 'Cutover' | 'Done';
/** OpenStorage's job statuses. */
export type MigrationStatus = 'Queued' | 'Active' | 'Done' | 'Failed' | 'Aborted';

export interface MigrationRecord {
  task_id: string;
  volume_id: string;
  volume_name: string;
  pair_id: string;
  pair_name: string;
  /** The volume on the other cluster, once made. */
  remote_volume_id?: string;
  /** The node that runs it. */
  node_id: string;
  cutover: 'auto' | 'manual';
  cutover_requested?: boolean;
  cancel_requested?: boolean;
  stage: MigrationStage;
  status: MigrationStatus;
  /** The source's snapshots carried over (chosen at start), oldest first, and how many of them are there. */
  snapshots?: { id: string; name: string }[];
  snapshots_done?: number;
  /** Passes done (the initial copy is pass 1). */
  pass: number;
  /** Bytes of the current pass, and how many of them went. */
  bytes_total: number;
  bytes_done: number;
  /** Bytes of every pass so far, and what they took on the wire (compressed, zeros as headers). */
  bytes_sent: number;
  wire_bytes: number;
  /** The snapshot the last whole pass brought the destination to. */
  last_snapshot_id?: string;
  /**
   * A migration that ended without its cutover whose destination volume could not be removed then (the link was
   * down): `pending` while the running node tries again, `done` once it is gone.
   */
  remote_cleanup?: 'pending' | 'done';
  /** How long the cutover held the volume's writes, ms. */
  writes_held_ms?: number;
  eta_seconds?: number;
  error_reason?: string;
  /** RFC 3339. */
  start_time: string;
  update_time: string;
  completed_time?: string;
}

export const migrationKey = (taskId: string): string => MIGRATIONS_PREFIX + taskId;

/** Every migration record, newest first. */
export async function listMigrations(store: ClusterStore): Promise<MigrationRecord[]> {
  const entries = await store.list<MigrationRecord>(MIGRATIONS_PREFIX);
  return entries.map((e) => e.value).sort((a, b) => b.start_time.localeCompare(a.start_time));
}

/** Whether a migration has ended. */
export function ended(record: MigrationRecord): boolean {
  return record.status === 'Done' || record.status === 'Failed' || record.status === 'Aborted';
}
