/**
 * Per-volume metrics, labelled by volume name and id (`volume`, `volume_id`):
 * - read at scrape time from the engine and the job list: `ferry_volume_used_bytes`, `ferry_volume_snapshots`,
 *   `ferry_volume_last_backup_timestamp_seconds` (the last backup that ended Done; absent before the first);
 * - fed by the NBD server: `ferry_volume_read_bytes_total`, `ferry_volume_written_bytes_total`,
 *   `ferry_volume_reads_total`, `ferry_volume_writes_total` and `ferry_volume_io_duration_seconds{op}` (a request's
 *   time from parsed to answered; snapshot exports count toward their volume).
 * Cardinality stays bounded by the live volumes: every scrape drops the series of volumes that no longer exist.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { IoObserver } from '../node/index.js';

/** What the per-volume gauges read at scrape time. */
export interface VolumeSource {
  /** The node's volumes (the engine's `listVolumes`). */
  listVolumes(): Promise<readonly { id: string; name: string; bytes_used: number; snapshot_count: number }[]>;
  /** When each volume's last successful backup ended (epoch ms, by volume id). Default: no backup metric. */
  lastBackups?(): Promise<ReadonlyMap<string, number>>;
}

type Labels = 'volume' | 'volume_id';

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
}
