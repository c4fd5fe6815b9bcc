/**
 * For tests only: a `ReplicaHost` whose replicas are the engine's `LocalReplica`s over real layer files in a
 * directory and a real store (SQLite), standing in for the engine's own host (`engine.replicaHost`, being built
 * beside this) until it lands; then the tests use that one and this file goes. It keeps what the engine keeps for a
 * replica: its top layer, gate and locks, its change counter, and the layers of the snapshots it was told about.
 */
import { join } from 'node:path';
import { notFound } from '../../common/index.js';
import { SqliteStore } from '../cluster/sqlite-store.js';
import type { Compare, StoreOp } from '../cluster/types.js';
import type { ReplicaHost, ReplicaTarget } from '../engine/cluster-ports.js';
import { Gate, KeyedLock } from '../engine/gate.js';
import { IoTracker } from '../engine/io-tracker.js';
import type { Layer } from '../engine/layer.js';
import { LayerSet } from '../engine/layer-set.js';
import { LocalLayerKeys, settleLostHead } from '../engine/local-layers.js';
import { LocalReplica, type ViewSource } from '../engine/local-replica.js';
import type { Replica } from '../engine/replica.js';

interface HeldVolume extends ViewSource {
  layer: Layer;
  progress: { generation: number };
  snapshots: Map<string, Layer>;
}

export class LayerReplicaHost implements ReplicaHost {
  private readonly volumes = new Map<string, HeldVolume>();

  private constructor(
    readonly nodeId: string,
    private readonly tracker: IoTracker,
    private readonly store: SqliteStore,
    private readonly layers: LayerSet,
    private readonly local: LocalLayerKeys,
  ) {}

  /** A host over the (existing, empty) directory `dataDir`. */
  static async open(dataDir: string, nodeId: string): Promise<LayerReplicaHost> {
    const store = new SqliteStore(join(dataDir, 'cluster.db'));
    const local = new LocalLayerKeys(nodeId);
    const tracker = new IoTracker();
    let host: LayerReplicaHost | undefined;
    const layers = new LayerSet(
      dataDir,
      store,
      local,
      tracker,
      (layer) => [...(host?.volumes.values() ?? [])].find((v) => v.layer === layer)?.gate,
      () => ({ ops: [], apply: () => {} }),
    );
    host = new LayerReplicaHost(nodeId, tracker, store, layers, local);
    return host;
  }

  /** The volume's replica (a new, empty one the first time), or a read-only view of one of its snapshots. */
  async open(target: ReplicaTarget): Promise<Replica> {
    const v = await this.volume(target.volumeId);
    if (target.snapshotId !== undefined) {
      const layer = v.snapshots.get(target.snapshotId);
      if (layer === undefined) throw notFound(`snapshot ${target.snapshotId} of ${target.volumeId} not found`);
      const view: ViewSource = { top: () => layer, gate: v.gate, locks: v.locks, tracker: this.tracker };
      return new LocalReplica(this.nodeId, `${target.volumeId}@${target.snapshotId}`, view, undefined);
    }
    return new LocalReplica(this.nodeId, target.volumeId, v, undefined, {
      layers: this.layers,
      local: this.local,
      progress: v.progress,
      settleLost: (headId) => settleLostHead(this.store, this.local, headId),
      layerOf: (snapshotId) => {
        const layer = v.snapshots.get(snapshotId);
        if (layer === undefined) throw notFound(`snapshot ${snapshotId} not found`);
        return layer;
      },
      setTop: (layer) => {
        v.layer = layer;
        this.layers.ref(layer);
      },
    });
  }

  /** Forgets the volume (its files stay until the directory is removed). */
  async drop(volumeId: string): Promise<void> {
    this.volumes.delete(volumeId);
  }

  /**
   * The engine's part of a snapshot staged on a replica of this host: commits its store changes (with the catalog's
   * record, in the engine) and learns the snapshot's frozen layer by its catalog id. Call before `staged.commit()`.
   * With `compares` (the coordinator's, S4), false when they did not hold (nothing committed).
   */
  async recordSnapshot(
    volumeId: string,
    snapshotId: string,
    staged: { ops: readonly StoreOp[]; point: string },
    compares: readonly Compare[] = [],
  ): Promise<boolean> {
    const v = await this.volume(volumeId);
    if (!(await this.store.txn(compares, staged.ops)).succeeded) return false;
    const layer = this.layers.get(staged.point);
    this.layers.ref(layer);
    v.snapshots.set(snapshotId, layer);
    return true;
  }

  async close(): Promise<void> {
    await this.layers.closeAll();
    await this.store.close();
  }

  private async volume(volumeId: string): Promise<HeldVolume> {
    const held = this.volumes.get(volumeId);
    if (held !== undefined) return held;
    const base = this.layers.create(undefined);
    await this.store.commit([this.local.put(base.record)]);
    this.layers.ref(base);
    const v: HeldVolume = {
      layer: base,
      gate: new Gate(),
      locks: new KeyedLock(),
      tracker: this.tracker,
      top: () => v.layer,
      progress: { generation: 0 },
      snapshots: new Map(),
    };
    this.volumes.set(volumeId, v);
    return v;
  }
}
