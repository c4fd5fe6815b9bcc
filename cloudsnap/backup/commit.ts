/**
 * Stage "commit": once every pack is stored and indexed, the reused packs are confirmed to exist, the root page goes
 * up, then the backup record (the commit point), then the volume's last backup in the cluster store. Only after that
 * is the previous backup's snapshot released and the `running/` marker removed.
 */
import type { BlockDevice, ClusterStore, SnapshotInfo } from '../../node/index.js';
import type { SnapshotSource } from '../ports.js';
import type { PackWriter } from '../repo/pack-writer.js';
import type { BackupRecord, Repository } from '../repo/repository.js';
import type { ChunkStats } from './dedup.js';
import type { ManifestBuilder } from './manifest.js';
import { type BackupPlan, ignoreNotFound } from './plan.js';

export interface CommitInput {
  engine: SnapshotSource;
  repo: Repository;
  store: ClusterStore;
  plan: BackupPlan;
  snapshot: SnapshotInfo;
  /** The device on the snapshot: closed here before the old snapshot goes, and set undefined once closed. */
  io: { device: BlockDevice | undefined };
  writer: PackWriter;
  manifest: ManifestBuilder;
  stats: ChunkStats;
  labels: Record<string, string> | undefined;
  signal?: AbortSignal;
}

/** Commits a backup whose packs are all stored (see the file comment); returns its record. */
export async function commitBackup(input: CommitInput): Promise<BackupRecord> {
  const { engine, repo, store, plan, snapshot, writer, signal } = input;
  const { id, volume, started, base, last } = plan;
  await writer.confirmReused();
  const rootId = await input.manifest.putRoot();
  const record: BackupRecord = {
    id,
    volume_id: volume.id,
    volume_name: volume.name,
    size: snapshot.size,
    labels: { ...volume.labels, ...(input.labels ?? {}) },
    created: started.toISOString(),
    completed: new Date().toISOString(),
    root: rootId.toString('hex'),
    chunk_size: repo.chunkSize,
    full: base === undefined,
    stats: { ...backupStats(input.stats, writer), duration_ms: Date.now() - started.getTime() },
    chunks_total: input.manifest.chunksTotal,
  };
  if (base !== undefined) record.base_backup = base.record.id;
  await repo.putBackup(record, signal);
  await store.commit([{ op: 'put', key: plan.lastKey, value: { backup_id: id, snapshot_id: snapshot.id } }]);
  await input.io.device?.close();
  input.io.device = undefined;
  await Promise.all([
    last === undefined ? undefined : engine.deleteSnapshot(last.snapshot_id).catch(ignoreNotFound),
    writer.close(),
  ]);
  return record;
}

/** The record's stats, in the order the format has always written them. */
function backupStats(chunks: ChunkStats, writer: PackWriter): Omit<BackupRecord['stats'], 'duration_ms'> {
  return {
    bytes_scanned: chunks.bytes_scanned,
    bytes_new: chunks.bytes_new,
    bytes_uploaded: writer.stats.bytes_uploaded,
    chunks: chunks.chunks,
    chunks_new: chunks.chunks_new,
    chunks_zero: chunks.chunks_zero,
    packs: writer.stats.packs,
  };
}
