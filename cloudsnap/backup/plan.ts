/**
 * Stage "plan": which volume, which backup id, and what it is diffed against. The base is the last backup to this
 * repository when its snapshot still exists and its record opens and fits; otherwise the backup reads every
 * allocated block. Snapshots of backups that never committed (a crash) are removed first.
 */
import { randomBytes } from 'node:crypto';
import { isFerryError } from '../../common/index.js';
import type { ClusterStore, SnapshotInfo, VolumeInfo } from '../../node/index.js';
import type { SnapshotSource } from '../ports.js';
import { newBackupId } from '../repo/layout.js';
import type { BackupRecord, Repository } from '../repo/repository.js';
import { type LastBackup, lastBackupKey } from '../state.js';

/** Name prefix of the snapshots backups take. */
export const SNAPSHOT_PREFIX = 'cloudsnap-';

/** What a backup is about to do. */
export interface BackupPlan {
  id: string;
  started: Date;
  volume: VolumeInfo;
  /** The cluster-store key of the volume's last successful backup to this repository. */
  lastKey: string;
  last: LastBackup | undefined;
  /** The backup diffed against, and its snapshot; undefined for a full backup. */
  base: { record: BackupRecord; snapshotId: string } | undefined;
}

export interface PlanInput {
  engine: SnapshotSource;
  repo: Repository;
  store: ClusterStore;
  volume: string;
  full: boolean;
  started: Date;
  signal?: AbortSignal;
}

/** Plans a backup of `input.volume` (see the file comment). */
export async function planBackup(input: PlanInput): Promise<BackupPlan> {
  const { engine, repo, store, started, signal } = input;
  const volume = await engine.inspectVolume(input.volume);
  const id = newBackupId(started, randomBytes(4).toString('hex'));
  const lastKey = lastBackupKey(repo.id, volume.id);
  const last = await store.get<LastBackup>(lastKey);
  await removeOrphanSnapshots(engine, volume.id, repo.id, last?.snapshot_id);
  let base: BackupPlan['base'];
  if (!input.full && last !== undefined) {
    try {
      const record = await repo.getBackup(last.backup_id, signal);
      await engine.inspectSnapshot(last.snapshot_id);
      if (record.chunk_size === repo.chunkSize && record.size <= volume.size)
        base = { record, snapshotId: last.snapshot_id };
    } catch (err: unknown) {
      // A damaged base record hides only that backup: this one reads every allocated block instead.
      if (!isFerryError(err, 'NOT_FOUND') && !isFerryError(err, 'DATA_CORRUPTION')) throw err;
    }
  }
  return { id, started, volume, lastKey, last, base };
}

/** The snapshot a planned backup reads, labelled with the backup and the repository. */
export function takeSnapshot(engine: SnapshotSource, repo: Repository, plan: BackupPlan): Promise<SnapshotInfo> {
  return engine.createSnapshot(plan.volume.id, {
    name: `${SNAPSHOT_PREFIX}${plan.id}`,
    labels: { 'ferry.io/backup': plan.id, 'ferry.io/repository': repo.id },
  });
}

export function ignoreNotFound(err: unknown): void {
  if (!isFerryError(err, 'NOT_FOUND')) throw err;
}

/** Snapshots left by backups to this repository that never committed (a crash): all of them but the last one. */
export async function removeOrphanSnapshots(
  engine: SnapshotSource,
  volumeId: string,
  repositoryId: string,
  keep: string | undefined,
): Promise<void> {
  for (const s of await engine.listSnapshots(volumeId)) {
    // Only this repository's: another repository's last backup snapshot is the base of its next incremental.
    const mine = s.labels['ferry.io/repository'] === repositoryId;
    if (s.name.startsWith(SNAPSHOT_PREFIX) && mine && s.id !== keep)
      await engine.deleteSnapshot(s.id).catch(ignoreNotFound);
  }
}
