/**
 * Per-volume metrics, labelled by volume name and id (`volume`, `volume_id`):
 * - read at scrape time from the engine and the job list: `ferry_volume_used_bytes`, `ferry_volume_snapshots`,
 *   `ferry_volume_last_backup_timestamp_seconds` (the last backup that ended Done; absent before the first);
 * - fed by the NBD server: `ferry_volume_read_bytes_total`, `ferry_volume_written_bytes_total`,
 *   `ferry_volume_reads_total`, `ferry_volume_writes_total` and `ferry_volume_io_duration_seconds{op}` (a request's
 *   time from parsed to answered; snapshot exports count toward their volume).
 * - per replica being resynced or filled (labelled also by the replica's `node`), read at scrape time from the
 *   volumes' records: `ferry_replica_resync_copied_bytes`, `ferry_replica_resync_total_bytes` and
 *   `ferry_replica_resync_eta_seconds` (absent until a rate is known); absent once the replica is in sync.
 * Cardinality stays bounded by the live volumes: every scrape drops the series of volumes that no longer exist.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { IoObserver } from '../node/index.js';

/** What the per-volume gauges read at scrape time. */
export interface VolumeSource {
  /** The node's volumes (the engine's `listVolumes`). */
  listVolumes(): Promise<
    readonly {
      id: string;
      name: string;
      bytes_used: number;
      snapshot_count: number;
      /** The replicas, with the progress of those being copied to (VolumeReplicaInfo). */
      replicas?: readonly ReplicaRow[];
    }[]
  >;
  /** When each volume's last successful backup ended (epoch ms, by volume id). Default: no backup metric. */
  lastBackups?(): Promise<ReadonlyMap<string, number>>;
}

type Labels = 'volume' | 'volume_id';

/** A replica as the gauges read it (the fields of VolumeReplicaInfo they use). */
export interface ReplicaRow {
  node_id: string;
  resync?: { copied_bytes: number; total_bytes: number; eta_seconds?: number };
}

/** NBD I/O latency buckets: 50 µs to 5 s. */
const IO_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5];

export class VolumeMetrics {
  private source: VolumeSource | undefined;
  /** The volumes as of the last `refresh`. */
  private current: VolumeRow[] = [];
  /** Volumes that have I/O series: id -> name. */
  private readonly withIo = new Map<string, string>();
  private readonly bytes: Record<'read' | 'write', Counter<Labels>>;
  private readonly ops: Record<'read' | 'write', Counter<Labels>>;
  private readonly duration: Histogram<Labels | 'op'>;

  constructor(registry: Registry) {
    const registers = [registry];
    const self = this;
    const perVolume = (name: string, help: string, value: (v: VolumeRow) => number | undefined) =>
      new Gauge({
        name,
        help,
        labelNames: ['volume', 'volume_id'],
        registers,
        collect() {
          this.reset();
          for (const row of self.current) {
            const v = value(row);
            if (v !== undefined) this.set({ volume: row.name, volume_id: row.id }, v);
          }
        },
      });
    perVolume('ferry_volume_used_bytes', "Bytes held by the volume's writable layer.", (r) => r.bytes_used);
    perVolume('ferry_volume_snapshots', "The volume's snapshots.", (r) => r.snapshot_count);
    perVolume(
      'ferry_volume_last_backup_timestamp_seconds',
      'When the last cloud backup of the volume that ended Done completed (Unix time); absent before the first.',
      (r) => r.last_backup,
    );
    const perReplica = (
      name: string,
      help: string,
      value: (r: NonNullable<ReplicaRow['resync']>) => number | undefined,
    ) =>
      new Gauge({
        name,
        help,
        labelNames: ['volume', 'volume_id', 'node'],
        registers,
        collect() {
          this.reset();
          for (const row of self.current) {
            for (const replica of row.replicas ?? []) {
              const v = replica.resync === undefined ? undefined : value(replica.resync);
              if (v !== undefined) this.set({ volume: row.name, volume_id: row.id, node: replica.node_id }, v);
            }
          }
        },
      });
    perReplica(
      'ferry_replica_resync_copied_bytes',
      'Bytes copied so far to a replica being resynced or filled.',
      (r) => r.copied_bytes,
    );
    perReplica(
      'ferry_replica_resync_total_bytes',
      'Bytes a replica being resynced or filled lacks in all (changed blocks for a resync, allocated data for a fill).',
      (r) => r.total_bytes,
    );
    perReplica(
      'ferry_replica_resync_eta_seconds',
      "Seconds left of a replica's resync or fill at its last rate; absent until a rate is known.",
      (r) => r.eta_seconds,
    );
    const counter = (name: string, help: string) =>
      new Counter({ name, help, labelNames: ['volume', 'volume_id'], registers });
    this.bytes = {
      read: counter('ferry_volume_read_bytes_total', 'Bytes read from the volume over NBD (its snapshots included).'),
      write: counter('ferry_volume_written_bytes_total', 'Bytes written to the volume over NBD.'),
    };
    this.ops = {
      read: counter('ferry_volume_reads_total', 'NBD READ requests served for the volume (its snapshots included).'),
      write: counter('ferry_volume_writes_total', 'NBD WRITE requests served for the volume.'),
    };
    this.duration = new Histogram({
      name: 'ferry_volume_io_duration_seconds',
      help: 'NBD READ and WRITE latency per volume, from the request parsed to its reply ready.',
      labelNames: ['volume', 'volume_id', 'op'],
      buckets: IO_BUCKETS,
      registers,
    });
  }

  /** Reads the gauges from `source` (replacing any earlier one). */
  watch(source: VolumeSource): void {
    this.source = source;
  }

  /** The observer of one NBD connection to volume `volume` (id `volumeId`): pass it from NbdServer's `observeIo`. */
  observer(volume: string, volumeId: string): IoObserver {
    const labels = { volume, volume_id: volumeId };
    this.withIo.set(volumeId, volume);
    return (op, bytes, seconds) => {
      this.withIo.set(volumeId, volume);
      this.bytes[op].inc(labels, bytes);
      this.ops[op].inc(labels);
      this.duration.observe({ ...labels, op }, seconds);
    };
  }

  /** Reads the volumes (once per scrape, before the registry is read) and drops the series of those gone. */
  async refresh(): Promise<void> {
    const source = this.source;
    if (source === undefined) return;
    const [volumes, backups] = await Promise.all([source.listVolumes(), source.lastBackups?.()]);
    this.forgetGone(new Set(volumes.map((v) => v.id)));
    this.current = volumes.map((v) => {
      const ms = backups?.get(v.id);
      return {
        id: v.id,
        name: v.name,
        bytes_used: v.bytes_used,
        snapshot_count: v.snapshot_count,
        ...(ms !== undefined && { last_backup: ms / 1000 }),
        ...(v.replicas !== undefined && { replicas: v.replicas }),
      };
    });
  }

  /** Drops the I/O series of volumes that are gone. */
  private forgetGone(live: ReadonlySet<string>): void {
    for (const [id, name] of this.withIo) {
      if (live.has(id)) continue;
      const labels = { volume: name, volume_id: id };
      for (const op of ['read', 'write'] as const) {
        this.bytes[op].remove(labels);
        this.ops[op].remove(labels);
        this.duration.remove({ ...labels, op });
      }
      this.withIo.delete(id);
    }
  }
}

interface VolumeRow {
  id: string;
  name: string;
  bytes_used: number;
  snapshot_count: number;
  last_backup?: number;
  replicas?: readonly ReplicaRow[];
}
