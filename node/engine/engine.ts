import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { FerryError, formatSize, invalidArgument, isFerryError, notFound } from '../../common/index.js';
import type { HeldLock } from '../cluster/lock.js';
import { loadNodeId } from '../cluster/node-id.js';
import { SqliteStore } from '../cluster/sqlite-store.js';
import type { ClusterStore, Compare, StoreOp } from '../cluster/types.js';
import { Catalog, catalogKeys, del, holdersOf, holds, put } from './catalog.js';
import {
  type PlacementPort,
  type PlacementRequest,
  type ReplicaConnector,
  type ReplicaHost,
  type ReplicaTarget,
  RunsElsewhere,
} from './cluster-ports.js';
import { BACKUP_SNAPSHOT_LABEL, MAX_BACKUP_SNAPSHOTS, MAX_SNAPSHOTS, RESYNC_SNAPSHOT_LABEL } from './constants.js';
import { type CoordinatedSnapshot, VolumeCoordinator } from './coordinator.js';
import { VolumeDevice } from './device.js';
import { EpochBook } from './epoch-file.js';
import { failpoint } from './failpoints.js';
import { Gate, KeyedLock } from './gate.js';
import { HaUpdater } from './ha-update.js';
import { IoTracker } from './io-tracker.js';
import {
  ENCRYPTED_LABEL,
  KEK_LABEL,
  KEY_PROVIDER_LABEL,
  keyUnavailable,
  noResolver,
  type VolumeEncryption,
  type VolumeKeyResolver,
} from './keys.js';
import type { Layer } from './layer.js';
import { LayerSet, newId } from './layer-set.js';
import { LocalLayerKeys, settleLostHead, upgradeLayout } from './local-layers.js';
import { LocalReplica, type ReplicaTree, type ViewSource } from './local-replica.js';
import { Mutex } from './mutex.js';
import { markOutOfSync, type OutOfSyncOptions, type ReplicaFailure, replicaTop } from './out-of-sync.js';
import { RecentWriteLog } from './recent-writes.js';
import type { ReplicaRecord, SnapshotRecord, VolumeRecord } from './records.js';
import { type Replica, type ReplicaDiffRequest, StaleEpochError } from './replica.js';
import { ResyncManager } from './resync-manager.js';
import { isNoSpace, SpaceGuard, type SpaceStatus } from './space.js';
import { markedRecord, type TakeoverMark, takeOver } from './takeover.js';
import { attachedElsewhere, attachHolder, changeRecord, hostOf, readRecord, takeAttachLock } from './tenure.js';
import type {
  BlockDevice,
  ChangedBlocksPage,
  ChangedBlocksRequest,
  CloneVolumeRequest,
  CreateSnapshotRequest,
  CreateVolumeRequest,
  GroupSnapshotRequest,
  HoldOutcome,
  OpenExportOptions,
  SnapshotInfo,
  UpdateVolumeRequest,
  VolumeEngine,
  VolumeHolder,
  VolumeInfo,
  VolumeReplicaInfo,
  WriteHold,
} from './types.js';
import { precondition, validateHaLevel, validateLabels, validateName, validateSize } from './validate.js';
import { GranuleCipher } from './xts.js';

export interface EngineOptions {
  /** Directory holding the layer files and (with the embedded store) the store file. */
  dataDir: string;
  /** The cluster store; default: the embedded SQLite store at `<dataDir>/cluster.db`. */
  store?: ClusterStore;
  /**
   * Makes and unwraps the data keys of encrypted volumes (the node wires one over its key providers). Default none:
   * creating or opening an encrypted volume is then FAILED_PRECONDITION.
   */
  keys?: VolumeKeyResolver;
  /**
   * The data directory's space guard (the daemon opens it before the store, see node/engine/space.ts). Default: one
   * opened here without a reserve file (new data still stops below its minimum free space).
   */
  space?: SpaceGuard;
  /**
   * This node's id: the engine loads, serves and collects only the volumes whose catalog record names it as a
   * replica holder, and the layers under its keys (`/ferry/local/<nodeId>/layers/`). Default: the id in
   * `<dataDir>/node-id` (created on the first start).
   */
  nodeId?: string;
  /**
   * Reaches the replicas other nodes hold (node/replication/). Default none: one node, every volume's replicas are
   * here, and a volume listing another node is refused.
   */
  replicas?: ReplicaConnector;
  /** Chooses nodes for new replicas (membership and node/cluster/placement.ts). Default: this node only. */
  placement?: PlacementPort;
  /**
   * The attach lock's lease, seconds: how long a dead coordinator blocks a takeover (docs/REPLICATION.md, F6). The
   * daemon passes its heartbeat's. Default 10.
   */
  attachLeaseSeconds?: number;
}

/** A volume this node holds a replica of: its layer tree here (the catalog record is the cluster's). */
interface VolumeState extends ViewSource {
  /** The record as this node last read it (the catalog's is authoritative: syncVolume refreshes it). */
  record: VolumeRecord;
  layer: Layer;
  /** The replica's change counter (Replica.generation). */
  progress: { generation: number };
  /** The replica's recent writes (R12). */
  recent: RecentWriteLog;
  /** This volume's snapshots held here, by name. */
  snaps: Map<string, SnapshotState>;
}

interface SnapshotState {
  record: SnapshotRecord;
  layer: Layer;
  readers: number;
}

/** A volume attached for writing on this node: its tenure (attach lock, epoch) and coordinator. */
interface Attachment {
  record: VolumeRecord;
  lock: HeldLock;
  epoch: number;
  coordinator: VolumeCoordinator;
  /** The open writable devices (more than one only for shared volumes), with who opened each and when. */
  devices: Map<VolumeDevice, VolumeHolder>;
  /** Held shared by every change through the devices, exclusively by a snapshot (the cut, S1). */
  gate: Gate;
  /** This node's replica's volume, when it holds one. */
  local?: VolumeState;
  /** Settles once the attachment is gone (its last device closed: lock released, record cleared). */
  detached: Promise<void>;
  /** Made by this node to resync the replicas of a volume nobody had attached (R19): given up to any other use. */
  forResync?: boolean;
  /** Set while a migration's cutover holds the volume's writes: they wait for it (holdWrites). */
  hold?: Promise<void>;
  /** Set once the volume moved to another cluster: why every write now fails. */
  sealed?: string;
}

/** A coordinator for one operation: the attachment's, or one made for it under a brief tenure. */
interface Tenure {
  record: VolumeRecord;
  revision: number;
  epoch: number;
  coordinator: VolumeCoordinator;
  local?: VolumeState;
  /** The attachment's gate when the volume is attached here. */
  gate?: Gate;
  /** The attach lock (compared by the operation's transaction). */
  lock: HeldLock;
  /** Ends a brief tenure (closes its replicas, releases the lock); nothing for an attachment's. */
  end(): Promise<void>;
}

/** Opens (creating when new) the block engine of a node. */
export async function openEngine(options: EngineOptions): Promise<VolumeEngine> {
  const layersDir = join(options.dataDir, 'layers');
  await mkdir(layersDir, { recursive: true, mode: 0o700 });
  const space = options.space ?? (await SpaceGuard.open({ dataDir: options.dataDir, reserveBytes: 0 }));
  const nodeId = options.nodeId ?? (await loadNodeId(options.dataDir));
  const store = options.store ?? new SqliteStore(join(options.dataDir, 'cluster.db'));
  const epochs = await EpochBook.open(join(options.dataDir, 'epochs'));
  const engine = new Engine(store, layersDir, options.store === undefined, options, space, nodeId, epochs);
  await engine.load();
  return engine;
}

/** Whether `layer` lies above `below` in its tree (`below` is one of its ancestors). */
function isAbove(layer: Layer, below: Layer): boolean {
  for (let l = layer.parent; l !== undefined; l = l.parent) if (l === below) return true;
  return false;
}

/** The node ids of a volume's replicas. */
function replicaNodes(record: VolumeRecord): string[] {
  return (record.replicas ?? []).map((r) => r.node_id);
}

/** What inspect shows of a replica: its state, why and since when it left in-sync, its copy's progress. */
function replicaInfo(replica: ReplicaRecord): VolumeReplicaInfo {
  const info: VolumeReplicaInfo = { node_id: replica.node_id, state: replica.state ?? 'in-sync' };
  const resync = replica.resync;
  if (resync !== undefined) {
    info.resync = { kind: resync.kind, copied_bytes: resync.copied_bytes, total_bytes: resync.total_bytes };
    if (resync.rate !== undefined && resync.rate > 0) {
      info.resync.bytes_per_second = resync.rate;
      info.resync.eta_seconds = Math.ceil(Math.max(0, resync.total_bytes - resync.copied_bytes) / resync.rate);
    }
  }
  if (replica.since !== undefined) info.since = replica.since;
  if (replica.reason !== undefined) info.reason = replica.reason;
  return info;
}

/** `degraded` while a replica is not in-sync, `down` when none is; absent for a lone replica that is fine. */
function healthOf(record: VolumeRecord): VolumeInfo['health'] {
  const replicas = record.replicas ?? [];
  const inSync = replicas.filter((r) => (r.state ?? 'in-sync') === 'in-sync').length;
  if (replicas.length === 0) return undefined;
  if (inSync === 0) return 'down';
  if (inSync < replicas.length) return 'degraded';
  return replicas.length > 1 ? 'healthy' : undefined;
}

/** Whether a snapshot is a hidden resync base (never listed, exported nor counted: R10). */
function isHidden(snap: SnapshotRecord): boolean {
  return snap.labels[RESYNC_SNAPSHOT_LABEL] !== undefined;
}

/** The nodes holding a snapshot (its record's `holders`, else its volume's replicas). */
function snapshotHolders(snap: SnapshotRecord, volume: VolumeRecord): string[] {
  return snap.holders ?? replicaNodes(volume);
}

class Engine implements VolumeEngine {
  private readonly volumes = new Map<string, VolumeState>();
  private readonly snapshots = new Map<string, SnapshotState>();
  private readonly attachments = new Map<string, Attachment>();
  /** Volumes whose attach lock this process holds (attachments and brief tenures). */
  private readonly tenures = new Set<string>();
  private readonly tracker = new IoTracker();
  private readonly layers: LayerSet;
  private readonly local: LocalLayerKeys;
  private readonly catalog: Catalog;
  private readonly meta = new Mutex();
  /** Serialises the refreshes of volume states from the catalog (never held across a call to another node). */
  private readonly syncLock = new Mutex();
  /** The attach under way of each volume (openWriter). */
  private readonly attaching = new Map<string, Promise<void>>();
  private readonly keys: VolumeKeyResolver | undefined;
  private readonly connector: ReplicaConnector | undefined;
  private readonly placement: PlacementPort | undefined;
  private readonly attachLeaseSeconds: number;
  /** Layer collections left by deleted snapshots, one after another (collectLater). */
  private collecting: Promise<void> = Promise.resolve();
  /** Refreshes scheduled by replicas' snapshot commits (syncSoon). */
  private background: Promise<void> = Promise.resolve();

  /** ha-update steps and their background fills (node/engine/ha-update.ts), made on first use. */
  private haUpdater?: HaUpdater;

  private get ha(): HaUpdater {
    this.haUpdater ??= new HaUpdater({
      store: this.store,
      nodeId: this.nodeId,
      replicas: this.connector,
      placement: this.placement,
      // The attachment's coordinator when attached here; else a tenure held for the fill (the attach lock: a writer
      // attaching elsewhere meanwhile is refused, naming this node).
      useCoordinator: async (record) => {
        const t = await this.tenure(record);
        return {
          coordinator: t.coordinator,
          epoch: t.epoch,
          compares: [{ key: t.lock.key, modRevision: t.lock.revision }],
          markFilling: (failures) =>
            markOutOfSync(this.outOfSyncOptions(t.coordinator, record.id, t.lock, t.local), failures),
          release: () => t.end(),
        };
      },
      attachedHere: (id) => this.attachments.get(id)?.coordinator,
      dropLocal: (id) => this.hostDrop(id),
      recordChanged: (record) => this.recordChanged(record),
      limiter: (id) => this.resync?.caps.limiterFor(id),
    });
    return this.haUpdater;
  }

  /** Resyncs and replacements of out-of-sync replicas of the volumes attached here (with a connector only). */
  private readonly resync: ResyncManager | undefined;

  private recordChanged(record: VolumeRecord): void {
    const v = this.volumes.get(record.id);
    if (v !== undefined) v.record = record;
    const att = this.attachments.get(record.id);
    if (att !== undefined) att.record = record;
  }

  readonly replicaHost: ReplicaHost = {
    open: (target) => this.hostOpen(target),
    drop: (volumeId) => this.hostDrop(volumeId),
  };

  constructor(
    private readonly store: ClusterStore,
    layersDir: string,
    private readonly ownsStore: boolean,
    options: EngineOptions,
    private readonly guard: SpaceGuard,
    private readonly nodeId: string,
    /** The highest epoch this node's replica of each volume has been opened under, durably (F3). */
    private readonly epochs: EpochBook,
  ) {
    this.keys = options.keys;
    this.connector = options.replicas;
    this.placement = options.placement;
    this.attachLeaseSeconds = options.attachLeaseSeconds ?? 10;
    this.local = new LocalLayerKeys(nodeId);
    this.catalog = new Catalog(store);
    this.resync =
      this.connector === undefined
        ? undefined
        : new ResyncManager({
            store,
            nodeId,
            replicas: this.connector,
            ...(this.placement !== undefined && { placement: this.placement }),
            attachedVolumes: () => [...this.attachments.keys()],
            attached: (id) => {
              const att = this.attachments.get(id);
              if (att === undefined) return undefined;
              const compares = [{ key: att.lock.key, modRevision: att.lock.revision }];
              const markFilling = (failures: readonly ReplicaFailure[]) =>
                markOutOfSync(this.outOfSyncOptions(att.coordinator, id, att.lock, att.local), failures);
              return { coordinator: att.coordinator, epoch: att.epoch, compares, markFilling };
            },
            busy: (id) => this.haUpdater?.busy(id) === true,
            attachForResync: (record) => this.attachForResync(record),
            deleteSnapshot: (id) => this.deleteSnapshot(id),
            recordChanged: (record) => this.recordChanged(record),
          });
    this.layers = new LayerSet(
      layersDir,
      store,
      this.local,
      this.tracker,
      (layer) => this.volumeTopped(layer)?.gate,
      (from, to) => {
        const moving = [...this.snapshots.values()].filter((s) => s.layer === from);
        return {
          ops: moving.map((s) => put.snapshot({ ...s.record, layer: to.id })),
          apply: () => {
            for (const s of moving) {
              s.record = { ...s.record, layer: to.id };
              s.layer = to;
            }
          },
        };
      },
      () => guard.tight,
      // A snapshot of a replicated volume names its layer on every holder: its id must not change.
      (layer) =>
        [...this.snapshots.values()].some(
          (s) => s.layer === layer && (this.volumes.get(s.record.volume_id)?.record.replicas?.length ?? 1) > 1,
        ),
    );
  }

  /**
   * Loads this node's volumes (those the catalog lists it as a replica of, making the empty top layer of one it has
   * none for yet), the snapshots it holds and its layers. Layers of volumes no longer listing it (deleted or
   * dropped while it was away, R18) are unreferenced, so the start-up collection removes them.
   */
  async load(): Promise<void> {
    await upgradeLayout(this.store, this.local);
    await this.layers.load();
    await this.dropOrphanLayers();
    // Tombstones of staged heads given up before this start (S4): the coordinators' transactions they answered are
    // long over.
    const tombstones = await this.store.list(this.local.abandonedPrefix);
    if (tombstones.length > 0) await this.store.commit(tombstones.map(({ key }) => ({ op: 'delete' as const, key })));
    for (const value of await this.catalog.volumes()) {
      // An attach of this node's that a crash ended: nothing is attached here at start.
      if (value.attached?.node_id === this.nodeId && value.epoch !== undefined) {
        await this.clearAttached(value.id, value.epoch);
      }
      if (!holds(value, this.nodeId)) continue;
      // An out-of-sync replica keeps its own top (the record's is the in-sync replicas' newer head).
      const top = this.layers.byId.has(value.top)
        ? value.top
        : await replicaTop(value, this.nodeId, (id) => this.catalog.snapshot(id));
      const mine = top === value.top || !this.layers.byId.has(top) ? value : { ...value, top };
      await this.materialize(mine);
      // Attached when this process started: writes before the start may be unflushed here, and nobody knows where.
      this.addVolume(mine, value.attached === undefined);
    }
    for (const value of await this.catalog.snapshots()) this.addSnapshotIfHeld(value);
    await this.resync?.start();
    // On a full disk the collection may need the reserve; failing it leaves the layers to the next start, and the
    // node still starts (its deletes are what frees the disk).
    try {
      await this.guard.withReserve(() => this.layers.collectAll());
    } catch (err: unknown) {
      if (!isNoSpace(err)) throw err;
      process.emitWarning(`collecting layers at start-up failed: ${String(err)}`, 'FerryEngineWarning');
    }
  }

  /**
   * Drops the layer records left without a parent (LayerSet.load, docs/REPLICATION.md S4) when no volume or snapshot
   * this node holds names one, with a warning; when one does, its data is gone and the start fails saying which.
   */
  private async dropOrphanLayers(): Promise<void> {
    const { orphans } = this.layers;
    if (orphans.size === 0) return;
    const volumes = (await this.catalog.volumes()).filter((v) => holds(v, this.nodeId));
    const held = new Set(volumes.map((v) => v.id));
    const needed = [
      ...volumes.filter((v) => orphans.has(v.top)).map((v) => `${orphans.get(v.top)}: volume ${v.name} tops it`),
      ...(await this.catalog.snapshots())
        .filter((s) => held.has(s.volume_id) && orphans.has(s.layer))
        .filter((s) => s.holders === undefined || s.holders.includes(this.nodeId))
        .map((s) => `${orphans.get(s.layer)}: snapshot ${s.name} names it`),
    ];
    if (needed.length > 0) throw new Error(needed.join('; '));
    const text = [...orphans.values()].join('; ');
    await this.layers.dropOrphans();
    process.emitWarning(
      `dropped layer records that nothing on this node needs, left by a snapshot it abandoned: ${text}`,
      'FerryEngineWarning',
    );
  }

  spaceStatus(): Promise<SpaceStatus> {
    return this.guard.status();
  }

  private volumeTopped(layer: Layer): VolumeState | undefined {
    for (const v of this.volumes.values()) if (v.layer === layer) return v;
    return undefined;
  }

  /**
   * Makes the top layer of a volume this node is listed for and has no layers of yet (a volume another node created
   * or cloned, a new replica to be filled): empty, named by the record's `top`, above the snapshot it was cloned
   * from when this node holds that snapshot's layer.
   */
  private async materialize(record: VolumeRecord): Promise<void> {
    if (this.layers.byId.has(record.top)) return;
    let parent: Layer | undefined;
    if (record.parent_snapshot_id !== undefined) {
      const snap = await this.catalog.snapshot(record.parent_snapshot_id);
      if (snap !== undefined) parent = this.layers.byId.get(snap.layer);
    }
    // A returning replica that restarted while away: its data is its old top, the layer its resync's base snapshot
    // froze on the others; the new top goes above it (frozen), as restack does for one that did not restart.
    const base = record.replicas?.find((r) => r.node_id === this.nodeId)?.resync?.base_snapshot_id;
    const stale =
      base === undefined ? undefined : this.layers.byId.get((await this.catalog.snapshot(base))?.layer ?? '');
    if (stale !== undefined) parent = stale;
    const top = this.layers.create(parent, false, record.top);
    try {
      await this.store.commit([
        ...(stale !== undefined && !stale.frozen ? [this.local.put({ ...stale.record, frozen: true })] : []),
        this.local.put(top.record),
      ]);
      if (stale !== undefined) stale.frozen = true;
    } catch (err: unknown) {
      this.layers.discard(top);
      throw err;
    }
  }

  private addVolume(record: VolumeRecord, recentKnown = true): VolumeState {
    const state: VolumeState = {
      record,
      layer: this.layers.get(record.top),
      snaps: new Map(),
      gate: new Gate(),
      locks: new KeyedLock(),
      tracker: this.tracker,
      space: this.guard,
      top: () => state.layer,
      progress: { generation: 0 },
      recent: new RecentWriteLog(recentKnown),
    };
    this.volumes.set(record.id, state);
    this.layers.ref(state.layer);
    return state;
  }

  private addSnapshot(record: SnapshotRecord): SnapshotState {
    const existing = this.snapshots.get(record.id);
    if (existing !== undefined) return existing;
    const state: SnapshotState = { record, layer: this.layers.get(record.layer), readers: 0 };
    this.snapshots.set(record.id, state);
    this.volumes.get(record.volume_id)?.snaps.set(record.name, state);
    this.layers.ref(state.layer);
    return state;
  }

  /** Adds a snapshot of a volume held here when this node holds it (its record's holders, and its layer). */
  private addSnapshotIfHeld(record: SnapshotRecord): void {
    const v = this.volumes.get(record.volume_id);
    if (v === undefined || this.snapshots.has(record.id)) return;
    if (record.holders !== undefined && !record.holders.includes(this.nodeId)) return;
    if (!this.layers.byId.has(record.layer)) return;
    this.addSnapshot(record);
  }

  private forgetSnapshot(s: SnapshotState): void {
    this.snapshots.delete(s.record.id);
    this.volumes.get(s.record.volume_id)?.snaps.delete(s.record.name);
    this.layers.unref(s.layer);
  }

  /**
   * Brings this node's state of volume `record` (which lists it as a replica) up to the catalog: loads it when it
   * has not (materializing its top layer), follows its top, adds the snapshots it holds and forgets the ones the
   * catalog no longer has (their layers are collected in the background).
   */
  private syncVolume(record: VolumeRecord): Promise<VolumeState> {
    return this.syncLock.run(async () => {
      let v = this.volumes.get(record.id);
      if (v === undefined) {
        await this.materialize(record);
        v = this.addVolume(record);
      } else {
        // Only forward: `record` may be older than a snapshot this node committed since it was read, and a top
        // moved back would write into a frozen layer.
        const top = this.layers.byId.get(record.top);
        if (top !== undefined && top !== v.layer && isAbove(top, v.layer)) {
          this.layers.ref(top);
          this.layers.unref(v.layer);
          v.layer = top;
        }
        v.record = record;
      }
      // Snapshots added while the catalog is read are newer than the read: only the ones known before may be gone.
      const known = new Set(v.snaps.values());
      const current = await this.catalog.snapshotsOf(record.id);
      const ids = new Set(current.map((s) => s.id));
      for (const s of current) this.addSnapshotIfHeld(s);
      for (const s of [...v.snaps.values()]) {
        if (!known.has(s) || ids.has(s.record.id) || s.readers > 0) continue;
        this.forgetSnapshot(s);
        this.collectLater(s.layer);
      }
      return v;
    });
  }

  /** Refreshes volume `id` from the catalog in the background (after a snapshot another node coordinated). */
  private syncSoon(id: string): void {
    this.background = this.background
      .then(async () => {
        const record = await this.catalog.volume(id);
        if (record !== undefined && holds(record, this.nodeId)) await this.syncVolume(record);
      })
      .catch((err: unknown) => {
        process.emitWarning(`refreshing volume ${id} from the catalog failed: ${String(err)}`, 'FerryEngineWarning');
      });
  }

  // ---- lookups -------------------------------------------------------------------------------------------------

  /** The catalog record of a volume of the cluster, by id or name. */
  private async recordOf(idOrName: string, field = 'volume_id'): Promise<VolumeRecord> {
    if (typeof idOrName !== 'string' || idOrName.length === 0) {
      throw invalidArgument(field, 'a volume id or name is required');
    }
    const record = await this.catalog.findVolume(idOrName);
    if (record === undefined) {
      throw notFound(`volume ${JSON.stringify(idOrName)} not found: list volumes with 'ferry volume list'`);
    }
    return record;
  }

  /** A snapshot of the cluster by id or `VOLUME@SNAPSHOT` (or, with `volume`, by name among its snapshots). */
  private async snapshotOf(
    idOrExport: string,
    volume?: VolumeRecord,
    field = 'snapshot_id',
  ): Promise<{ snap: SnapshotRecord; volume: VolumeRecord }> {
    if (typeof idOrExport !== 'string' || idOrExport.length === 0) {
      throw invalidArgument(field, 'a snapshot id is required');
    }
    const byId = await this.catalog.snapshot(idOrExport);
    if (byId !== undefined && (volume === undefined || byId.volume_id === volume.id)) {
      const owner = volume ?? (await this.catalog.volume(byId.volume_id));
      if (owner !== undefined) return { snap: byId, volume: owner };
    }
    const at = idOrExport.indexOf('@');
    const snapName = at >= 0 ? idOrExport.slice(at + 1) : idOrExport;
    const owner = at >= 0 ? await this.catalog.findVolume(idOrExport.slice(0, at)) : volume;
    if (owner !== undefined && (volume === undefined || owner.id === volume.id)) {
      const snap = (await this.catalog.snapshotsOf(owner.id)).find((s) => s.name === snapName);
      if (snap !== undefined) return { snap, volume: owner };
    }
    const where = volume !== undefined ? ` of volume ${volume.name}` : '';
    throw notFound(
      `snapshot ${JSON.stringify(idOrExport)}${where} not found: list them with 'ferry volume snapshot list'`,
    );
  }

  /** Whether this node can work on `record`: it holds every replica, or it reaches other nodes' (a connector). */
  private canReach(record: VolumeRecord): boolean {
    return this.connector !== undefined || replicaNodes(record).every((n) => n === this.nodeId);
  }

  /** FAILED_PRECONDITION for a volume this node cannot reach (no connector): it names the node that holds it. */
  private notHere(record: VolumeRecord): FerryError {
    const message = `volume ${record.name} is held by ${holdersOf(record)}, not by this node (${this.nodeId}): attach it, and take its snapshots, clones and backups, on the node that holds it`;
    const holder = record.attached?.node_id ?? record.replicas?.[0]?.node_id;
    return holder === undefined ? precondition(message) : new RunsElsewhere(holder, message);
  }

  /** RunsElsewhere when another node holds the volume's attach lock (and this node does not). */
  private async refuseIfAttachedElsewhere(record: VolumeRecord): Promise<void> {
    if (this.attachments.has(record.id)) return;
    const holder = await attachHolder(this.store, record.id);
    if (holder !== undefined && holder !== this.nodeId) {
      throw attachedElsewhere(record.name, holder, await hostOf(this.store, holder));
    }
  }

  /**
   * RESOURCE_EXHAUSTED when the volume has no room for one more snapshot of this kind: MAX_SNAPSHOTS of the user's,
   * MAX_BACKUP_SNAPSHOTS of those backups keep (labelled BACKUP_SNAPSHOT_LABEL), each counted on its own.
   */
  private checkSnapshotRoom(
    record: VolumeRecord,
    existing: readonly SnapshotRecord[],
    labels: Readonly<Record<string, string>> | undefined,
  ): void {
    const isBackup = (l: Readonly<Record<string, string>> | undefined) => l?.[BACKUP_SNAPSHOT_LABEL] !== undefined;
    const backup = isBackup(labels);
    const count = existing.filter((s) => !isHidden(s) && isBackup(s.labels) === backup).length;
    const limit = backup ? MAX_BACKUP_SNAPSHOTS : MAX_SNAPSHOTS;
    if (count < limit) return;
    throw new FerryError(
      'RESOURCE_EXHAUSTED',
      backup
        ? `volume ${record.name} has ${count} backup snapshots (one per repository it is backed up to), the most it may have; stop backing it up to some repositories`
        : `volume ${record.name} has ${count} snapshots, the most a volume may have; delete one first`,
    );
  }

  /** What the catalog says of a volume, with what only this node knows (usage of its replica, its writers). */
  private infoOf(r: VolumeRecord, snapshotCount: number): VolumeInfo {
    const v = this.volumes.get(r.id);
    const att = this.attachments.get(r.id);
    const attachedNode = att !== undefined ? this.nodeId : r.attached?.node_id;
    // A node's own attach for a resync is no client's: the volume is available to attach anywhere.
    const forResync = att !== undefined ? att.forResync === true : r.attached?.for === 'resync';
    const info: VolumeInfo = {
      id: r.id,
      name: r.name,
      size: r.size,
      ha_level: r.ha_level,
      labels: { ...r.labels },
      created: r.created,
      status: r.status,
      ...(r.migrated_to !== undefined && { migrated_to: r.migrated_to }),
      shared: r.shared,
      encrypted: r.encryption !== undefined,
      snapshot_count: snapshotCount,
      attached: attachedNode !== undefined && !forResync,
      ...(att !== undefined &&
        att.devices.size > 0 && { attached_by: [...att.devices.values()].map((holder) => ({ ...holder })) }),
      ...(attachedNode !== undefined && { attached_node: attachedNode }),
      ...(attachedNode !== undefined && forResync && { attached_for: 'resync' as const }),
      bytes_used: v?.layer.bytesUsed ?? 0,
      bytes_used_total:
        v === undefined
          ? 0
          : [...new Set([v.layer, ...[...v.snaps.values()].map((s) => s.layer)])].reduce(
              (sum, layer) => sum + layer.bytesUsed,
              0,
            ),
      replicas: (r.replicas ?? []).map(replicaInfo),
      held_here: holds(r, this.nodeId),
    };
    const health = healthOf(r);
    if (health !== undefined) info.health = health;
    if (r.parent_snapshot_id !== undefined) info.parent_snapshot_id = r.parent_snapshot_id;
    if (r.encryption !== undefined) {
      info.encryption = { kek: r.encryption.kek, key_provider: r.encryption.key_provider };
      const unavailable = this.keys?.unusable?.(r.encryption);
      if (unavailable !== undefined) info.unavailable = unavailable;
    }
    return info;
  }

  private async volumeInfo(r: VolumeRecord): Promise<VolumeInfo> {
    return this.infoOf(r, (await this.catalog.snapshotsOf(r.id)).filter((s) => !isHidden(s)).length);
  }

  private snapshotRecordInfo(r: SnapshotRecord, volumeName: string): SnapshotInfo {
    return {
      id: r.id,
      name: r.name,
      volume_id: r.volume_id,
      volume_name: volumeName,
      size: r.size,
      labels: { ...r.labels },
      created: r.created,
    };
  }

  // ---- replicas and tenures ------------------------------------------------------------------------------------

  /**
   * Admits an open of this node's replica of `record` under `epoch` (F3): StaleEpochError ('fenced') when it has been
   * opened under a later one; else resolves once `epoch` is durably the highest (epoch-file.ts).
   */
  private async admitEpoch(record: VolumeRecord, epoch: number): Promise<void> {
    const seen = this.epochs.epochOf(record.id);
    if (epoch < seen) {
      throw new StaleEpochError(
        seen,
        `fenced: this node's replica of volume ${record.name} was opened under epoch ${seen}, and this open has the older epoch ${epoch} (a coordinator that lost the volume); attach the volume again`,
      );
    }
    await this.epochs.raise(record.id, epoch);
  }

  /**
   * This node's replica of a volume it holds, opened under `epoch` (every call is refused once a later epoch opened
   * it, F3; none: not fenced, for a diff of frozen snapshots); `cipher` for an encrypted volume's data (the replica
   * then owns it).
   */
  private localReplica(v: VolumeState, cipher: GranuleCipher | undefined, epoch?: number): LocalReplica {
    const id = v.record.id;
    const fence = epoch === undefined ? undefined : { epoch, held: () => this.epochs.epochOf(id) };
    return new LocalReplica(this.nodeId, v.record.name, v, cipher, this.replicaTree(v), true, fence);
  }

  /** The tree of this node's replica of a volume it holds. */
  private replicaTree(v: VolumeState): ReplicaTree {
    return {
      layers: this.layers,
      local: this.local,
      progress: v.progress,
      recent: v.recent,
      settleLost: (headId) => settleLostHead(this.store, this.local, headId),
      layerOf: (snapshotId) => {
        const s = this.snapshots.get(snapshotId);
        if (s === undefined || s.record.volume_id !== v.record.id) {
          throw notFound(`snapshot ${snapshotId} is not held on node ${this.nodeId}`);
        }
        return s.layer;
      },
      setTop: (layer) => {
        v.layer = layer;
        this.layers.ref(layer);
        v.record = { ...v.record, top: layer.id };
        // The coordinator (maybe another node) committed the snapshot record: learn it.
        this.syncSoon(v.record.id);
      },
    };
  }

  /** A read-only view of a snapshot held here (with the tree, so it lists changed blocks too). */
  private snapshotView(v: VolumeState, s: SnapshotState, name: string, cipher: GranuleCipher | undefined): Replica {
    const source: ViewSource = { top: () => s.layer, gate: v.gate, locks: v.locks, tracker: this.tracker };
    return new LocalReplica(
      this.nodeId,
      name,
      source,
      cipher,
      {
        layers: this.layers,
        local: this.local,
        progress: { generation: 0 },
        layerOf: (snapshotId) => {
          const found = this.snapshots.get(snapshotId);
          if (found === undefined || found.record.volume_id !== v.record.id) {
            throw notFound(`snapshot ${snapshotId} is not held on node ${this.nodeId}`);
          }
          return found.layer;
        },
        setTop: () => undefined,
      },
      false,
    );
  }

  private async hostOpen(target: ReplicaTarget): Promise<Replica> {
    const record = await this.catalog.volume(target.volumeId);
    if (record === undefined || !holds(record, this.nodeId)) {
      throw notFound(`volume ${target.volumeId} has no replica on node ${this.nodeId}`);
    }
    // A snapshot's view reads frozen data: an older coordinator cannot make it diverge, so it is not fenced.
    if (target.snapshotId === undefined) await this.admitEpoch(record, target.epoch);
    const v = await this.syncVolume(record);
    if (target.snapshotId === undefined) await this.restack(v, record);
    const cipher = await this.cipherFor(record.name, record.encryption);
    if (target.snapshotId === undefined) return this.localReplica(v, cipher, target.epoch);
    const s = this.snapshots.get(target.snapshotId);
    if (s === undefined || s.record.volume_id !== record.id) {
      cipher?.release();
      throw notFound(`snapshot ${target.snapshotId} of volume ${record.name} is not held on node ${this.nodeId}`);
    }
    return this.snapshotView(v, s, `${record.name}@${s.record.name}`, cipher);
  }

  /**
   * A returning replica's top is stale when snapshots were taken while it was away (the record's `top` names a layer
   * this node never made): its top is frozen under a new empty one named as the record says, so that its later
   * snapshots name the same layers as the other replicas'. Its data stays (the resync copies what it lacks).
   */
  private restack(v: VolumeState, record: VolumeRecord): Promise<void> {
    return this.syncLock.run(async () => {
      if (v.layer.id === record.top || this.layers.byId.has(record.top)) return;
      await v.gate.enterExclusive();
      try {
        const frozen = v.layer;
        await frozen.flush();
        const top = this.layers.create(frozen, false, record.top);
        try {
          await this.store.commit([this.local.put({ ...frozen.record, frozen: true }), this.local.put(top.record)]);
        } catch (err: unknown) {
          this.layers.discard(top);
          throw err;
        }
        frozen.frozen = true;
        this.layers.ref(top);
        this.layers.unref(frozen);
        v.layer = top;
        v.record = record;
      } finally {
        v.gate.leaveExclusive();
      }
    });
  }

  private async hostDrop(volumeId: string): Promise<void> {
    if (this.attachments.has(volumeId)) {
      throw precondition(`volume ${volumeId} is attached on this node (${this.nodeId}); detach it before dropping it`);
    }
    const dropped = await this.syncLock.run(async () => {
      const v = this.volumes.get(volumeId);
      if (v === undefined) return undefined;
      await this.guard.withReserve(() => this.store.commit([this.local.del(v.layer.id)]));
      return this.forgetVolume(v);
    });
    if (dropped !== undefined) await this.collectNow(dropped);
  }

  /**
   * Forgets a volume held here whose top layer's record is gone (deleted, or its replica dropped): removes the top's
   * files and returns the layers left to collect (its snapshots', its parent).
   */
  private async forgetVolume(v: VolumeState): Promise<Layer[]> {
    this.volumes.delete(v.record.id);
    await this.epochs.forget(v.record.id);
    const top = v.layer;
    this.layers.unref(top);
    const snaps = [...v.snaps.values()];
    for (const s of snaps) this.forgetSnapshot(s);
    const parent = top.parent;
    this.layers.discard(top);
    await this.tracker.drain();
    await top.destroy();
    const orphans = snaps.map((s) => s.layer);
    if (parent !== undefined) orphans.push(parent);
    return orphans;
  }

  /** Collects `layers` after the collections under way, and waits for it (under the metadata lock). */
  private collectNow(layers: Layer[]): Promise<void> {
    const done = this.collecting.then(() => this.meta.run(() => this.collectFreeing(layers)));
    this.collecting = done.catch((err: unknown) => {
      process.emitWarning(`collecting dropped layers failed: ${String(err)}`, 'FerryEngineWarning');
    });
    return done;
  }

  /**
   * Opens the in-sync replicas of `record` under `epoch`: this node's (unwrapping the data key when `withKey`) and
   * the others' through the connector. All or none: a failure closes the ones opened.
   */
  private async openReplicas(
    record: VolumeRecord,
    epoch: number,
    withKey: boolean,
  ): Promise<{ coordinator: VolumeCoordinator; local?: VolumeState }> {
    const inSync = (record.replicas ?? []).filter((r) => (r.state ?? 'in-sync') === 'in-sync');
    if (inSync.length === 0) {
      throw new FerryError(
        'UNAVAILABLE',
        `volume ${record.name} has no in-sync replica (${holdersOf(record)}); it cannot be used until one is back`,
      );
    }
    const opened: Replica[] = [];
    let local: VolumeState | undefined;
    try {
      for (const r of inSync) {
        if (r.node_id === this.nodeId) {
          await this.admitEpoch(record, epoch);
          local = await this.syncVolume(record);
          const cipher = withKey ? await this.cipherFor(record.name, record.encryption) : undefined;
          opened.push(this.localReplica(local, cipher, epoch));
        } else {
          if (this.connector === undefined) throw this.notHere(record);
          opened.push(await this.connector.open(r.node_id, { volumeId: record.id, epoch }));
        }
      }
    } catch (err: unknown) {
      await Promise.allSettled(opened.map((r) => r.close()));
      throw err;
    }
    const coordinator = new VolumeCoordinator(opened, { localNodeId: this.nodeId });
    return local === undefined ? { coordinator } : { coordinator, local };
  }

  /**
   * The replicas of a writer's attach under `lock` (its revision is the epoch): a replicated volume's through a
   * takeover (takeover.ts: every replica opened at once with a bounded wait, the lost ones marked out-of-sync, the
   * survivors reconciled, F2 and F5); a single replica's as any tenure's.
   */
  private async openForWriter(
    record: VolumeRecord,
    lock: HeldLock,
  ): Promise<{ coordinator: VolumeCoordinator; local?: VolumeState; record: VolumeRecord }> {
    if ((record.replicas ?? []).length <= 1) {
      return { ...(await this.openReplicas(record, lock.revision, true)), record };
    }
    const epoch = lock.revision;
    let local: VolumeState | undefined;
    let coordinator: VolumeCoordinator | undefined;
    const over = (replicas: readonly Replica[]): VolumeCoordinator => {
      coordinator ??= new VolumeCoordinator(replicas, { localNodeId: this.nodeId });
      return coordinator;
    };
    const taken = await takeOver(record, {
      nodeId: this.nodeId,
      open: async (node) => {
        if (node !== this.nodeId) {
          if (this.connector === undefined) throw this.notHere(record);
          return this.connector.open(node, { volumeId: record.id, epoch });
        }
        await this.admitEpoch(record, epoch);
        local = await this.syncVolume(record);
        return this.localReplica(local, await this.cipherFor(record.name, record.encryption), epoch);
      },
      markOutOfSync: (marks, survivors) => {
        const mine = survivors.some((r) => r.nodeId === this.nodeId) ? local : undefined;
        return this.markAtTakeover(over(survivors), record.id, lock, mine, marks);
      },
    });
    const made = over(taken.replicas);
    const here = taken.replicas.some((r) => r.nodeId === this.nodeId) ? local : undefined;
    if (here !== undefined) here.record = taken.record;
    return { coordinator: made, record: taken.record, ...(here !== undefined && { local: here }) };
  }

  /**
   * Records the replicas a takeover lost as out-of-sync under the attach lock (C1): the `dirty` ones through
   * markOutOfSync (a hidden base frozen on the survivors; a filling one's copied part gets it as its low base), then
   * the `fill` ones (a full copy).
   */
  private async markAtTakeover(
    coordinator: VolumeCoordinator,
    volumeId: string,
    lock: HeldLock,
    local: VolumeState | undefined,
    marks: readonly TakeoverMark[],
  ): Promise<VolumeRecord> {
    const dirty = marks.filter((m) => m.kind === 'dirty');
    const fill = marks.filter((m) => m.kind === 'fill');
    let record: VolumeRecord | undefined;
    if (dirty.length > 0) {
      // The lost replicas may hold writes of the old epoch nobody else got: their own recent writes count on return.
      const failures = dirty.map((m) => ({
        nodeId: m.nodeId,
        error: new Error(m.reason),
        extra: m.extra,
        ownWrites: true,
        ...(m.restart === true && { restart: true }),
      }));
      record = await markOutOfSync(this.outOfSyncOptions(coordinator, volumeId, lock, local), failures);
    }
    if (fill.length > 0) {
      const now = new Date().toISOString();
      record = await changeRecord(
        this.store,
        volumeId,
        (r) => markedRecord(r, fill, now),
        [],
        [{ key: lock.key, modRevision: lock.revision }],
      );
    }
    return record ?? (await readRecord(this.store, volumeId)).record;
  }

  /**
   * The coordinator for one operation on `record`: the attachment's when it is attached here, else a brief tenure
   * (the attach lock, its epoch, the in-sync replicas). RunsElsewhere when another node has it attached.
   */
  private async tenure(record: VolumeRecord): Promise<Tenure> {
    const att = this.attachments.get(record.id);
    if (att !== undefined) {
      const { record: fresh, revision } = await readRecord(this.store, record.id, record.name);
      return {
        record: fresh,
        revision,
        epoch: att.epoch,
        coordinator: att.coordinator,
        gate: att.gate,
        lock: att.lock,
        ...(att.local !== undefined && { local: att.local }),
        end: async () => undefined,
      };
    }
    if (!this.canReach(record)) throw this.notHere(record);
    const lock = await this.takeLock(record);
    try {
      const { record: fresh, revision } = await readRecord(this.store, record.id, record.name);
      const { coordinator, local } = await this.openReplicas(fresh, lock.revision, false);
      this.recordFailures(coordinator, fresh.id, lock, local);
      return {
        record: fresh,
        revision,
        epoch: lock.revision,
        coordinator,
        lock,
        ...(local !== undefined && { local }),
        end: async () => {
          await coordinator.close().catch(() => undefined);
          await this.releaseLock(record.id, lock);
        },
      };
    } catch (err: unknown) {
      await this.releaseLock(record.id, lock);
      throw err;
    }
  }

  /**
   * Makes `coordinator` record its failing in-sync replicas out-of-sync (R7, S2: node/engine/out-of-sync.ts) under
   * `lock`, holding this node's replica's writers (`local`'s gate) while the resync base is staged.
   */
  private recordFailures(
    coordinator: VolumeCoordinator,
    volumeId: string,
    lock: HeldLock,
    local: VolumeState | undefined,
  ): void {
    coordinator.setInSyncFailureHandler(async (failures) => {
      await markOutOfSync(this.outOfSyncOptions(coordinator, volumeId, lock, local), failures);
    });
  }

  /** How markOutOfSync records replicas of `volumeId` out-of-sync for `coordinator` under `lock`. */
  private outOfSyncOptions(
    coordinator: VolumeCoordinator,
    volumeId: string,
    lock: HeldLock,
    local: VolumeState | undefined,
  ): OutOfSyncOptions {
    return {
      store: this.store,
      coordinator,
      volumeId,
      lock,
      holdingWrites: (fn) => (local === undefined ? fn() : local.gate.withExclusive(fn)),
      txn: (compares, ops) => this.guard.withReserve(() => this.store.txn(compares, ops)),
      committed: (record, snapshot) => {
        const v = this.volumes.get(volumeId);
        if (v !== undefined) v.record = record;
        const att = this.attachments.get(volumeId);
        if (att !== undefined && att.coordinator === coordinator) att.record = record;
        if (snapshot !== undefined) this.addSnapshotIfHeld(snapshot);
      },
      deleteSnapshot: (id) => this.deleteSnapshot(id),
    };
  }

  /** Takes `record`'s attach lock; another node's attach for a resync is asked to give way unless `forResync`. */
  private async takeLock(record: VolumeRecord, forResync = false): Promise<HeldLock> {
    const lock = await takeAttachLock(
      this.store,
      record,
      this.nodeId,
      () => this.tenures.has(record.id),
      this.attachLeaseSeconds,
      ...(forResync ? [0] : []),
    );
    this.tenures.add(record.id);
    return lock;
  }

  private async releaseLock(volumeId: string, lock: HeldLock): Promise<void> {
    this.tenures.delete(volumeId);
    await lock.release().catch((err: unknown) => {
      process.emitWarning(
        `releasing the attach lock of volume ${volumeId} failed: ${String(err)}`,
        'FerryEngineWarning',
      );
    });
  }

  /** Runs `fn` with writes to the tenures' volumes held (attachment gates, then local gates, in id order). */
  private async holdingWrites<T>(tenures: readonly Tenure[], fn: () => Promise<T>): Promise<T> {
    const ordered = [...tenures].sort((a, b) => a.record.id.localeCompare(b.record.id));
    const entered: Gate[] = [];
    try {
      for (const t of ordered) {
        for (const gate of [t.gate, t.local?.gate]) {
          if (gate === undefined) continue;
          await gate.enterExclusive();
          entered.push(gate);
        }
      }
      return await fn();
    } finally {
      for (const gate of entered.reverse()) gate.leaveExclusive();
    }
  }

  // ---- volumes -------------------------------------------------------------------------------------------------

  /** The nodes for a new volume's replicas: the placement port's choice, or this node alone. */
  private async place(request: PlacementRequest): Promise<string[]> {
    if (this.placement !== undefined) {
      const nodes = await this.placement.place(request);
      if (nodes.length !== request.ha_level || new Set(nodes).size !== nodes.length) {
        throw new FerryError(
          'INTERNAL',
          `placement chose ${nodes.length} distinct node(s) (${nodes.join(', ')}) for ${request.ha_level} replicas`,
        );
      }
      return nodes;
    }
    if (request.ha_level > 1) {
      throw precondition(
        `this node runs alone: ha_level ${request.ha_level} needs ${request.ha_level} nodes in a cluster`,
      );
    }
    const other = request.nodes?.find((n) => n !== this.nodeId);
    if (other !== undefined) {
      throw precondition(`this node runs alone: it cannot place a replica on node ${other}`);
    }
    return [this.nodeId];
  }

  async createVolume(request: CreateVolumeRequest): Promise<{ volume: VolumeInfo; created: boolean }> {
    const name = validateName('name', request.name);
    const size = validateSize('spec.size', request.size);
    const nodes = validateNodeList('spec.replica_nodes', request.replica_nodes);
    const racks = validateNodeList('spec.racks', request.racks);
    const zones = validateNodeList('spec.zones', request.zones);
    const ha = validateHaLevel('spec.ha_level', request.ha_level ?? (nodes !== undefined ? nodes.length : undefined));
    if (nodes !== undefined && nodes.length > ha) {
      throw invalidArgument('spec.replica_nodes', `names ${nodes.length} nodes for ha_level ${ha}: at most ${ha}`);
    }
    const labels = validateLabels('labels', request.labels);
    const encrypted = wantsEncryption(request.encrypted === true, labels);
    if (encrypted && labels[ENCRYPTED_LABEL] === undefined) {
      labels[ENCRYPTED_LABEL] = 'true';
      validateLabels('labels', labels);
    }
    // The provider is called outside the metadata lock (a slow KMS holds up nothing else), and only for a new name.
    let prepared: { id: string; encryption: VolumeEncryption } | undefined;
    if (encrypted && (await this.catalog.named(name)) === undefined) prepared = await this.newVolumeKey(name, labels);
    return this.meta.run(async () => {
      const existing = await this.catalog.named(name);
      if (existing !== undefined) {
        if (existing.size !== size) {
          throw new FerryError(
            'ALREADY_EXISTS',
            `volume ${name} already exists with size ${formatSize(existing.size)}; pick another name or use that size`,
          );
        }
        if ((existing.encryption !== undefined) !== encrypted) {
          throw new FerryError(
            'ALREADY_EXISTS',
            `volume ${name} already exists ${encrypted ? 'unencrypted' : 'encrypted'}; pick another name`,
          );
        }
        return { volume: await this.volumeInfo(existing), created: false };
      }
      const what = `volume ${name} cannot be created`;
      const placed = await this.place({
        ha_level: ha,
        size,
        ...(nodes !== undefined && { nodes }),
        ...(racks !== undefined && { racks }),
        ...(zones !== undefined && { zones }),
      });
      const here = placed.includes(this.nodeId);
      if (here) await this.guard.checkRoom(what);
      if (encrypted && prepared === undefined) prepared = await this.newVolumeKey(name, labels);
      const topId = newId();
      const record: VolumeRecord = {
        id: prepared?.id ?? newId(),
        name,
        size,
        ha_level: ha,
        labels,
        created: new Date().toISOString(),
        shared: request.shared === true,
        top: topId,
        status: request.restoring === true ? 'restoring' : 'up',
        replicas: placed.map((node_id) => ({ node_id, state: 'in-sync' })),
      };
      if (prepared !== undefined) record.encryption = prepared.encryption;
      // This node's replica is made with the record; the others' top layers are made by their nodes when first
      // opened (or started): an empty layer of the record's `top` id.
      const layer = here ? this.layers.create(undefined, false, topId) : undefined;
      await this.commitOrDiscard(
        [...(layer !== undefined ? [this.local.put(layer.record)] : []), put.volume(record), put.name(record)],
        layer !== undefined ? [layer] : [],
        what,
        name,
      );
      if (here) this.addVolume(record);
      return { volume: this.infoOf(record, 0), created: true };
    });
  }

  /** A wrapped data key for a new volume (its id is made here: the wrap binds it), under the KEK its labels name. */
  private async newVolumeKey(
    name: string,
    labels: Record<string, string>,
  ): Promise<{ id: string; encryption: VolumeEncryption }> {
    if (this.keys === undefined) throw noResolver(`volume ${name} cannot be created encrypted`);
    const id = newId();
    const kek = labels[KEK_LABEL];
    const keyProvider = labels[KEY_PROVIDER_LABEL];
    try {
      const { key, encryption } = await this.keys.createKey({
        volumeId: id,
        ...(kek !== undefined && { kek }),
        ...(keyProvider !== undefined && { keyProvider }),
      });
      key.fill(0);
      return { id, encryption };
    } catch (err: unknown) {
      if (isFerryError(err, 'INVALID_ARGUMENT') && (err.field === 'kek' || err.field === 'key_provider')) {
        const label = err.field === 'kek' ? KEK_LABEL : KEY_PROVIDER_LABEL;
        throw new FerryError('INVALID_ARGUMENT', `labels.${label}: ${err.message}`, {
          field: `labels.${label}`,
          cause: err,
        });
      }
      throw err;
    }
  }

  /** The cipher of an encrypted volume's tree (its data key unwrapped now), or undefined for a plaintext one. */
  private async cipherFor(name: string, encryption: VolumeEncryption | undefined): Promise<GranuleCipher | undefined> {
    if (encryption === undefined) return undefined;
    if (this.keys === undefined) throw noResolver(`volume ${name} is encrypted and cannot be opened`);
    let key: Buffer;
    try {
      key = await this.keys.unwrapKey(encryption);
    } catch (err: unknown) {
      throw keyUnavailable(name, encryption, err);
    }
    try {
      return new GranuleCipher(key);
    } catch (err: unknown) {
      throw keyUnavailable(name, encryption, err);
    } finally {
      key.fill(0);
    }
  }

  /** Every volume of the cluster, from the catalog (with this node's usage figures for the replicas it holds). */
  async listVolumes(): Promise<VolumeInfo[]> {
    const counts = new Map<string, number>();
    for (const s of await this.catalog.snapshots()) counts.set(s.volume_id, (counts.get(s.volume_id) ?? 0) + 1);
    const infos = (await this.catalog.volumes()).map((r) => this.infoOf(r, counts.get(r.id) ?? 0));
    return infos.sort((a, b) => a.name.localeCompare(b.name));
  }

  async inspectVolume(idOrName: string): Promise<VolumeInfo> {
    return this.volumeInfo(await this.recordOf(idOrName));
  }

  async openProblem(idOrName: string): Promise<string | undefined> {
    const record = await this.recordOf(idOrName);
    if (!this.canReach(record)) return this.notHere(record).message;
    if (record.status !== 'up') return notUp(record);
    try {
      // Unwraps the data key as an open would (without taking a writer slot), then forgets it.
      (await this.cipherFor(record.name, record.encryption))?.release();
    } catch (err: unknown) {
      return err instanceof Error ? err.message : String(err);
    }
    return undefined;
  }

  updateVolume(idOrName: string, request: UpdateVolumeRequest): Promise<VolumeInfo> {
    return this.meta.run(async () => {
      const record = await this.recordOf(idOrName);
      if (!this.canReach(record)) throw this.notHere(record);
      await this.refuseIfAttachedElsewhere(record);
      if (request.ha_level !== undefined) {
        const changed = await this.ha.update(record, request);
        if (request.size === undefined && request.labels === undefined && request.resync_bandwidth === undefined) {
          return this.volumeInfo(changed);
        }
      }
      const size = request.size !== undefined ? validateSize('spec.size', request.size) : undefined;
      const asked = request.labels !== undefined ? validateLabels('labels', request.labels, true) : undefined;
      const bandwidth = request.resync_bandwidth;
      if (bandwidth !== undefined && bandwidth !== null && (!Number.isSafeInteger(bandwidth) || bandwidth < 0)) {
        throw invalidArgument('spec.resync_bandwidth', 'bytes per second, a whole number (0: no cap)');
      }
      failpoint('update.before-commit');
      const next = await changeRecord(this.store, record.id, (current) => {
        const out: VolumeRecord = { ...current, labels: { ...current.labels } };
        if (size !== undefined) {
          if (size < current.size) {
            throw invalidArgument('spec.size', `volumes cannot shrink: ${current.name} is ${formatSize(current.size)}`);
          }
          out.size = size;
        }
        if (asked !== undefined) {
          const wanted = asked[ENCRYPTED_LABEL];
          if (wanted !== undefined && wanted !== (current.labels[ENCRYPTED_LABEL] ?? '')) {
            throw invalidArgument(`labels.${ENCRYPTED_LABEL}`, 'is set when a volume is created and cannot change');
          }
          for (const [k, val] of Object.entries(asked)) {
            if (val === '') delete out.labels[k];
            else out.labels[k] = val;
          }
          validateLabels('labels', out.labels);
        }
        if (bandwidth === null) delete out.resync_bandwidth;
        else if (bandwidth !== undefined) out.resync_bandwidth = bandwidth;
        return out;
      });
      failpoint('update.after-commit');
      const v = this.volumes.get(record.id);
      if (v !== undefined) v.record = next;
      return this.volumeInfo(next);
    });
  }

  async deleteVolume(idOrName: string): Promise<void> {
    const resyncing = await this.recordOf(idOrName).catch(() => undefined);
    if (resyncing !== undefined) await this.giveUpResync(resyncing.id);
    const { id, name, others } = await this.meta.run(async () => {
      const record = await this.recordOf(idOrName);
      if (this.attachments.has(record.id)) {
        throw precondition(`volume ${record.name} is attached; disconnect its NBD client first`);
      }
      if (!this.canReach(record)) throw this.notHere(record);
      const v = holds(record, this.nodeId) ? await this.syncVolume(record) : undefined;
      const open = v !== undefined ? [...v.snaps.values()].find((s) => s.readers > 0) : undefined;
      if (open !== undefined) {
        throw precondition(`snapshot ${record.name}@${open.record.name} is open for reading; disconnect it first`);
      }
      const lock = await this.takeLock(record);
      try {
        const { record: fresh, revision } = await readRecord(this.store, record.id, record.name);
        const snaps = await this.catalog.snapshotsOf(fresh.id);
        const done = await this.guard.withReserve(() =>
          this.store.txn(
            [
              { key: catalogKeys.volume(fresh.id), modRevision: revision },
              { key: lock.key, modRevision: lock.revision },
            ],
            [
              del.volume(fresh.id),
              del.name(fresh.name),
              ...(v !== undefined ? [this.local.del(v.layer.id)] : []),
              ...snaps.map((s) => del.snapshot(s.id)),
            ],
          ),
        );
        if (!done.succeeded) throw precondition(`volume ${fresh.name} changed while it was being deleted; try again`);
        failpoint('volume-delete.after-commit');
        if (v !== undefined) {
          const orphans = await this.syncLock.run(() => this.forgetVolume(v));
          try {
            await this.collectFreeing(orphans);
          } catch (err: unknown) {
            // The volume is gone (its records are); what its layers still hold is collected at the next start.
            if (!isNoSpace(err)) throw err;
            process.emitWarning(
              `collecting the layers of volume ${fresh.name} failed: ${String(err)}`,
              'FerryEngineWarning',
            );
          }
        }
        return { id: fresh.id, name: fresh.name, others: replicaNodes(fresh).filter((n) => n !== this.nodeId) };
      } finally {
        await this.releaseLock(record.id, lock);
      }
    });
    // The other holders drop their layers (outside the metadata lock: a holder may be deleting one of ours).
    // One that cannot be reached collects them when it next starts (its record is gone: R18).
    for (const node of others) {
      try {
        await this.connector?.drop(node, id);
      } catch (err: unknown) {
        process.emitWarning(
          `volume ${name} is deleted, but node ${node} could not drop its replica now (${String(err)}); it removes its layers when it next starts`,
          'FerryEngineWarning',
        );
      }
    }
  }

  cloneVolume(request: CloneVolumeRequest): Promise<VolumeInfo> {
    return this.meta.run(async () => {
      const name = validateName('name', request.name);
      const labels = validateLabels('labels', request.labels);
      if ((await this.catalog.named(name)) !== undefined) {
        throw new FerryError('ALREADY_EXISTS', `volume ${name} already exists; pick another name for the clone`);
      }
      if (typeof request.parent_id !== 'string' || request.parent_id.length === 0) {
        throw invalidArgument('parent_id', 'the volume or snapshot to clone is required');
      }
      const what = `clone ${name} cannot be created`;
      const found = await this.snapshotOf(request.parent_id).catch((err: unknown) => {
        if (isFerryError(err, 'NOT_FOUND')) return undefined;
        throw err;
      });
      if (found !== undefined) return this.cloneSnapshot(found.snap, found.volume, name, labels, what);
      const source = await this.recordOf(request.parent_id, 'parent_id');
      const nodes = replicaNodes(source);
      if (nodes.length !== 1 || nodes[0] !== this.nodeId) {
        if (nodes.length === 1 && this.connector === undefined) throw this.notHere(source);
        if (nodes.length === 1) {
          throw new RunsElsewhere(
            nodes[0] as string,
            `volume ${source.name} is held by node ${nodes[0]}: clone it there, or take a snapshot and clone that`,
          );
        }
        throw precondition(
          `volume ${source.name} has ${nodes.length} replicas: take a snapshot of it and clone the snapshot (ferry volume snapshot create, then ferry volume clone)`,
        );
      }
      await this.refuseIfAttachedElsewhere(source);
      await this.guard.checkRoom(what);
      const v = await this.syncVolume(source);
      const encryption = source.encryption;
      const cloneLabels = cloneLabelsOf(labels, source, encryption);
      const att = this.attachments.get(source.id);
      const tenures = att !== undefined ? [{ record: source, gate: att.gate, local: v } as Tenure] : [];
      return this.holdingWrites(tenures, () =>
        v.gate.withExclusive(async () => {
          const { record: fresh, revision } = await readRecord(this.store, source.id, source.name);
          const frozen = v.layer;
          await frozen.flush();
          const sourceTop = this.layers.create(frozen);
          const cloneTop = this.layers.create(frozen);
          const record = this.newVolumeRecord(name, v.record.size, cloneLabels, cloneTop.id, undefined, encryption, [
            this.nodeId,
          ]);
          const sourceRecord = { ...fresh, top: sourceTop.id };
          await this.commitOrDiscard(
            [
              this.local.put({ ...frozen.record, frozen: true }),
              this.local.put(sourceTop.record),
              this.local.put(cloneTop.record),
              put.volume(sourceRecord),
              put.volume(record),
              put.name(record),
            ],
            [sourceTop, cloneTop],
            what,
            name,
            [{ key: catalogKeys.volume(source.id), modRevision: revision }],
          );
          frozen.frozen = true;
          this.layers.unref(frozen);
          v.record = sourceRecord;
          v.layer = sourceTop;
          this.layers.ref(sourceTop);
          this.addVolume(record);
          return this.infoOf(record, 0);
        }),
      );
    });
  }

  /**
   * A clone of snapshot `snap`: a new volume whose replicas are the snapshot's holders, each with a top layer of one
   * id (chosen here) above the snapshot's layer. This node's is made with the record; the other holders make theirs
   * at once (opened through the connector), so that their snapshot layer cannot be collected first. When one cannot,
   * the clone is removed again.
   */
  private async cloneSnapshot(
    snap: SnapshotRecord,
    origin: VolumeRecord,
    name: string,
    labels: Record<string, string>,
    what: string,
  ): Promise<VolumeInfo> {
    const holders = snapshotHolders(snap, origin);
    const here = holders.includes(this.nodeId);
    if (!here && this.connector === undefined) throw this.notHere(origin);
    const encryption = origin.encryption;
    const cloneLabels = cloneLabelsOf(labels, origin, encryption);
    const topId = newId();
    const record = this.newVolumeRecord(name, snap.size, cloneLabels, topId, snap.id, encryption, holders);
    let top: Layer | undefined;
    if (here) {
      await this.guard.checkRoom(what);
      await this.syncVolume(origin);
      const s = this.snapshots.get(snap.id);
      if (s === undefined) throw precondition(`snapshot ${origin.name}@${snap.name} is not held on this node`);
      top = this.layers.create(s.layer, false, topId);
    }
    failpoint('clone.before-commit');
    await this.commitOrDiscard(
      [...(top !== undefined ? [this.local.put(top.record)] : []), put.volume(record), put.name(record)],
      top !== undefined ? [top] : [],
      what,
      name,
    );
    failpoint('clone.after-commit');
    if (here) this.addVolume(record);
    const made: string[] = [];
    try {
      for (const node of holders) {
        if (node === this.nodeId) continue;
        const replica = await (this.connector as ReplicaConnector).open(node, { volumeId: record.id, epoch: 0 });
        made.push(node);
        await replica.close();
      }
    } catch (err: unknown) {
      await this.store.commit([del.volume(record.id), del.name(record.name)]).catch(() => undefined);
      const v = this.volumes.get(record.id);
      if (v !== undefined) {
        await this.store.commit([this.local.del(v.layer.id)]).catch(() => undefined);
        await this.syncLock.run(() => this.forgetVolume(v));
      }
      for (const node of made) await this.connector?.drop(node, record.id).catch(() => undefined);
      throw err;
    }
    return this.infoOf(record, 0);
  }

  private newVolumeRecord(
    name: string,
    size: number,
    labels: Record<string, string>,
    top: string,
    parentSnapshot: string | undefined,
    encryption: VolumeEncryption | undefined,
    nodes: readonly string[],
  ): VolumeRecord {
    const record: VolumeRecord = {
      id: newId(),
      name,
      size,
      ha_level: nodes.length,
      labels,
      created: new Date().toISOString(),
      shared: false,
      top,
      status: 'up',
      replicas: nodes.map((node_id) => ({ node_id, state: 'in-sync' })),
    };
    if (parentSnapshot !== undefined) record.parent_snapshot_id = parentSnapshot;
    if (encryption !== undefined) record.encryption = encryption;
    return record;
  }

  /**
   * Commits a change (with `compares`: only while they hold, C1); on failure forgets the layers it made. No space is RESOURCE_EXHAUSTED naming `what`. With
   * `claim` (a new volume's name), the commit holds only while no node has taken that name since it was checked: two
   * nodes creating one name at once get one volume and one ALREADY_EXISTS, never two volumes of one name.
   */
  private async commitOrDiscard(
    ops: StoreOp[],
    created: Layer[],
    what: string,
    claim?: string,
    compares: readonly Compare[] = [],
  ): Promise<void> {
    let committed = true;
    try {
      const all = [...(claim !== undefined ? [{ key: catalogKeys.name(claim), modRevision: 0 }] : []), ...compares];
      if (all.length === 0) await this.store.commit(ops);
      else committed = (await this.store.txn(all, ops)).succeeded;
    } catch (err: unknown) {
      for (const l of created) this.layers.discard(l);
      if (isNoSpace(err)) throw await this.guard.exhaustedNow(what, err);
      throw err;
    }
    if (!committed) {
      for (const l of created) this.layers.discard(l);
      if (claim === undefined || (await this.store.get(catalogKeys.name(claim))) === undefined) {
        throw precondition(`${what}: the volume changed meanwhile; try again`);
      }
      throw new FerryError(
        'ALREADY_EXISTS',
        `${what}: another node created volume ${claim} meanwhile; pick another name`,
      );
    }
  }

  // ---- snapshots -----------------------------------------------------------------------------------------------

  async createSnapshot(volumeIdOrName: string, request: CreateSnapshotRequest): Promise<SnapshotInfo> {
    const [info] = await this.takeSnapshots([{ ...request, volume_id: volumeIdOrName }], false);
    return info as SnapshotInfo;
  }

  createSnapshots(requests: readonly GroupSnapshotRequest[]): Promise<SnapshotInfo[]> {
    return this.takeSnapshots(requests, true);
  }

  /**
   * Snapshots of one or more volumes at one point in time: each volume's coordinator (its attachment's, or a brief
   * tenure's) stages the snapshot on every in-sync replica with one head id while writes to all are held (S1), and
   * one store transaction commits every replica's staged changes, the snapshot records (with their holders) and the
   * volume records (new `top`, the epoch), comparing the records' mod revisions and the attach locks (C1, S2).
   */
  private takeSnapshots(requests: readonly GroupSnapshotRequest[], group: boolean): Promise<SnapshotInfo[]> {
    return this.meta.run(async () => {
      const planned: { record: VolumeRecord; name: string; labels: Record<string, string> }[] = [];
      for (const [i, request] of requests.entries()) {
        const at = group ? `[${i}].` : '';
        const record = await this.recordOf(request.volume_id, `${at}volume_id`);
        const name = validateName(`${at}name`, request.name);
        const labels = validateLabels(`${at}labels`, request.labels);
        const existing = await this.catalog.snapshotsOf(record.id);
        if (existing.some((s) => s.name === name)) {
          throw new FerryError('ALREADY_EXISTS', `volume ${record.name} already has a snapshot named ${name}`);
        }
        this.checkSnapshotRoom(record, existing, labels);
        planned.push({ record, name, labels });
      }
      if (new Set(planned.map((p) => p.record.id)).size !== planned.length) {
        throw invalidArgument('volume_id', 'a group names each volume once');
      }
      const what = group
        ? `snapshots of ${planned.map((p) => p.record.name).join(', ')} cannot be taken`
        : `snapshot ${planned[0]?.name} of volume ${planned[0]?.record.name} cannot be taken`;
      for (const p of planned) if (!this.canReach(p.record)) throw this.notHere(p.record);
      if (planned.some((p) => holds(p.record, this.nodeId))) await this.guard.checkRoom(what);
      const tenures: Tenure[] = [];
      try {
        // Always in id order: no deadlock with another group.
        for (const p of [...planned].sort((a, b) => a.record.id.localeCompare(b.record.id))) {
          tenures.push(await this.tenure(p.record));
        }
        const tenureOf = (p: (typeof planned)[number]) => tenures.find((t) => t.record.id === p.record.id) as Tenure;
        return await this.holdingWrites(tenures, async () => {
          const created = new Date().toISOString();
          const staged: {
            t: Tenure;
            replica: CoordinatedSnapshot;
            record: SnapshotRecord;
            volumeRecord: VolumeRecord;
          }[] = [];
          try {
            for (const p of planned) {
              const t = tenureOf(p);
              const id = newId();
              const replica = await t.coordinator.snapshot(id, newId());
              const record: SnapshotRecord = {
                id,
                name: p.name,
                volume_id: t.record.id,
                layer: replica.point,
                size: t.record.size,
                labels: p.labels,
                created,
                holders: t.coordinator.replicas.map((r) => r.nodeId),
              };
              staged.push({ t, replica, record, volumeRecord: { ...t.record, top: replica.head, epoch: t.epoch } });
            }
            failpoint('snapshot.before-commit');
            const done = await this.guard.withReserve(() =>
              this.store.txn(
                staged.flatMap((s) => [
                  { key: catalogKeys.volume(s.t.record.id), modRevision: s.t.revision },
                  { key: s.t.lock.key, modRevision: s.t.lock.revision },
                  ...s.replica.compares,
                ]),
                staged.flatMap((s) => [...s.replica.ops, put.volume(s.volumeRecord), put.snapshot(s.record)]),
              ),
            );
            if (!done.succeeded) throw precondition(`${what}: a volume changed meanwhile; try again`);
          } catch (err: unknown) {
            for (const s of staged) s.replica.abandon();
            if (isNoSpace(err)) throw await this.guard.exhaustedNow(what, err);
            throw err;
          }
          failpoint('snapshot.after-commit');
          return staged.map((s) => {
            s.replica.commit();
            const v = this.volumes.get(s.record.volume_id);
            if (v !== undefined) v.record = s.volumeRecord;
            this.addSnapshotIfHeld(s.record);
            return this.snapshotRecordInfo(s.record, s.t.record.name);
          });
        });
      } finally {
        for (const t of tenures) await t.end();
      }
    });
  }

  async listSnapshots(volumeIdOrName: string): Promise<SnapshotInfo[]> {
    const record = await this.recordOf(volumeIdOrName);
    const infos = (await this.catalog.snapshotsOf(record.id))
      .filter((r) => !isHidden(r))
      .map((r) => this.snapshotRecordInfo(r, record.name));
    return infos.sort((a, b) => a.created.localeCompare(b.created) || a.name.localeCompare(b.name));
  }

  async inspectSnapshot(idOrExport: string): Promise<SnapshotInfo> {
    const { snap, volume } = await this.snapshotOf(idOrExport);
    return this.snapshotRecordInfo(snap, volume.name);
  }

  /**
   * Deletes the snapshot's record. This node's layer of it is collected in the background; the other holders'
   * when they next refresh the volume from the catalog (an open by a coordinator, or their next start).
   */
  deleteSnapshot(idOrExport: string): Promise<void> {
    return this.meta.run(async () => {
      const { snap, volume } = await this.snapshotOf(idOrExport);
      if (!this.canReach(volume)) throw this.notHere(volume);
      const s = this.snapshots.get(snap.id);
      if (s !== undefined && s.readers > 0) {
        throw precondition(`snapshot ${s.record.name} is open for reading; disconnect it first`);
      }
      await this.guard.withReserve(() => this.store.commit([del.snapshot(snap.id)]));
      failpoint('snapshot-delete.after-commit');
      if (s !== undefined) {
        this.forgetSnapshot(s);
        this.collectLater(s.layer);
      }
    });
  }

  /**
   * Reclaims an unreferenced layer after the call that left it has returned: folding a deleted snapshot's layer into
   * its neighbour copies data and syncs it (tens of ms for the snapshot of a backup's changes, paid at the end of
   * every incremental backup), while the snapshot itself is gone as soon as its record is. The collection runs under
   * the metadata lock like any change; a crash before it ends leaves the layer to the collection at the next start
   * (load: collectAll), as a crash in the middle of one always did. `settled` and `close` wait for it.
   */
  private collectLater(layer: Layer): void {
    this.collecting = this.collecting
      .then(() => this.meta.run(() => this.collectFreeing([layer])))
      .catch((err: unknown) => {
        // The layer stays, unreferenced: the next start collects it again.
        process.emitWarning(`collecting layer ${layer.id} failed: ${String(err)}`, 'FerryEngineWarning');
      });
  }

  /**
   * The garbage rule on `layers`, with the reserve to fall back on: it gives space back, so a full disk must not stop
   * it. Then the reserve is made again if it was used and there is room.
   */
  private async collectFreeing(layers: readonly Layer[]): Promise<void> {
    try {
      for (const l of layers) await this.guard.withReserve(() => this.layers.collect(l));
    } finally {
      void this.guard.maybeRemake();
    }
  }

  async settled(): Promise<void> {
    await this.background;
    await this.collecting;
  }

  /**
   * Makes the live volume equal to the snapshot. A volume with one replica only: on its node (RunsElsewhere
   * elsewhere), under its attach lock. Restoring a replicated volume in place is not done yet.
   */
  restoreSnapshot(volumeIdOrName: string, snapshotIdOrExport: string): Promise<void> {
    return this.meta.run(async () => {
      const record = await this.recordOf(volumeIdOrName);
      const { snap } = await this.snapshotOf(snapshotIdOrExport, record);
      if (this.attachments.has(record.id)) {
        throw precondition(`volume ${record.name} is attached; disconnect its NBD client first`);
      }
      await this.refuseIfAttachedElsewhere(record);
      const nodes = replicaNodes(record);
      if (nodes.length !== 1) {
        throw precondition(
          `volume ${record.name} has ${nodes.length} replicas: restoring it in place is not supported yet; clone snapshot ${snap.name} instead (ferry volume clone)`,
        );
      }
      if (nodes[0] !== this.nodeId) {
        if (this.connector === undefined) throw this.notHere(record);
        throw new RunsElsewhere(
          nodes[0] as string,
          `volume ${record.name} is held by node ${nodes[0]}: restore it there`,
        );
      }
      const what = `volume ${record.name} cannot be restored from snapshot ${snap.name}`;
      await this.guard.checkRoom(what);
      const lock = await this.takeLock(record);
      try {
        const { record: fresh, revision } = await readRecord(this.store, record.id, record.name);
        const v = await this.syncVolume(fresh);
        const s = this.snapshots.get(snap.id);
        if (s === undefined) throw notFound(`snapshot ${snap.name} of volume ${record.name} is not held on this node`);
        const old = v.layer;
        const top = this.layers.create(s.layer);
        const next = { ...fresh, top: top.id };
        failpoint('restore.before-commit');
        await this.commitOrDiscard(
          [this.local.put(top.record), put.volume(next), this.local.del(old.id)],
          [top],
          what,
          undefined,
          [
            { key: catalogKeys.volume(record.id), modRevision: revision },
            { key: lock.key, modRevision: lock.revision },
          ],
        );
        failpoint('restore.after-commit');
        const parent = old.parent;
        this.layers.unref(old);
        this.layers.discard(old);
        v.record = next;
        v.layer = top;
        this.layers.ref(top);
        await this.tracker.drain();
        await old.destroy();
        if (parent !== undefined) await this.layers.collect(parent);
      } finally {
        await this.releaseLock(record.id, lock);
      }
    });
  }

  /**
   * Changed blocks from a replica that holds the snapshots named (and the head): this node's when it holds them,
   * else another holder's through the connector. Every holder answers the same (S1).
   */
  async changedBlocks(volumeIdOrName: string, request: ChangedBlocksRequest): Promise<ChangedBlocksPage> {
    const record = await this.recordOf(volumeIdOrName);
    const offset = request.offset ?? 0;
    const limit = request.limit ?? 1000;
    if (!Number.isSafeInteger(offset) || offset < 0) throw invalidArgument('offset', 'must be a non-negative integer');
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > 100_000) {
      throw invalidArgument('limit', 'must be between 1 and 100000');
    }
    const target =
      request.target_snapshot_id !== undefined
        ? (await this.snapshotOf(request.target_snapshot_id, record, 'target_snapshot_id')).snap
        : undefined;
    const base =
      request.base_snapshot_id !== undefined
        ? (await this.snapshotOf(request.base_snapshot_id, record, 'base_snapshot_id')).snap
        : undefined;
    if (base !== undefined && target !== undefined && base.created > target.created) {
      throw invalidArgument('base_snapshot_id', 'the base snapshot must be older than the target snapshot');
    }
    const diff: ReplicaDiffRequest = {
      ...(base !== undefined && { base_snapshot_id: base.id }),
      ...(target !== undefined && { target_snapshot_id: target.id }),
      size: target?.size ?? record.size,
      offset,
      limit,
    };
    const needed = [base, target].filter((s) => s !== undefined);
    const inSync = (record.replicas ?? []).filter((r) => (r.state ?? 'in-sync') === 'in-sync').map((r) => r.node_id);
    const holdsAll = (node: string): boolean =>
      inSync.includes(node) && needed.every((s) => snapshotHolders(s, record).includes(node));
    if (holdsAll(this.nodeId)) {
      const v = await this.syncVolume(record);
      if (needed.every((s) => this.snapshots.has(s.id))) return this.localReplica(v, undefined).changedBlocks(diff);
    }
    if (this.connector === undefined) throw this.notHere(record);
    const node = inSync.find((n) => n !== this.nodeId && holdsAll(n));
    if (node === undefined) {
      throw precondition(`no in-sync replica of volume ${record.name} holds the snapshots asked for`);
    }
    const replica = await this.connector.open(node, {
      volumeId: record.id,
      epoch: record.epoch ?? 0,
      ...(target !== undefined && { snapshotId: target.id }),
    });
    try {
      return await replica.changedBlocks(diff);
    } finally {
      await replica.close();
    }
  }

  // ---- exports -------------------------------------------------------------------------------------------------

  /** The cluster's volumes and snapshots when this node reaches other nodes; else the ones it holds. */
  async listExports(): Promise<string[]> {
    const volumes = (await this.catalog.volumes()).filter((r) => this.canReach(r));
    const byId = new Map(volumes.map((r) => [r.id, r]));
    const names = volumes.map((r) => r.name);
    for (const s of await this.catalog.snapshots()) {
      if (isHidden(s)) continue;
      const owner = byId.get(s.volume_id);
      if (owner !== undefined) names.push(`${owner.name}@${s.name}`);
    }
    return names.sort();
  }

  async describeExport(name: string): Promise<{ size: number; readOnly: boolean; blockSize: number }> {
    if (name.includes('@')) {
      const { snap, volume } = await this.snapshotOf(name);
      if (!this.canReach(volume)) throw this.notHere(volume);
      return { size: snap.size, readOnly: true, blockSize: 4096 };
    }
    const record = await this.recordOf(name);
    if (!this.canReach(record)) throw this.notHere(record);
    return { size: record.size, readOnly: false, blockSize: 4096 };
  }

  async openForRestore(idOrName: string): Promise<BlockDevice> {
    const record = await this.recordOf(idOrName);
    if (!this.canReach(record)) throw this.notHere(record);
    if (record.status !== 'restoring') throw precondition(`volume ${record.name} is not being restored`);
    return this.openWriter(record, 'restore');
  }

  completeRestore(idOrName: string): Promise<VolumeInfo> {
    return this.meta.run(async () => {
      const record = await this.recordOf(idOrName);
      if (record.status !== 'restoring') throw precondition(`volume ${record.name} is not being restored`);
      if (!this.canReach(record)) throw this.notHere(record);
      const att = this.attachments.get(record.id);
      if (att !== undefined) await att.coordinator.flush();
      else await this.volumes.get(record.id)?.layer.flush();
      const next = await changeRecord(this.store, record.id, (r) => {
        if (r.status !== 'restoring') throw precondition(`volume ${r.name} is not being restored`);
        return { ...r, status: 'up' };
      });
      const v = this.volumes.get(record.id);
      if (v !== undefined) v.record = next;
      return this.volumeInfo(next);
    });
  }

  holdWrites(idOrName: string): Promise<WriteHold> {
    return this.meta.run(async () => {
      const record = await this.recordOf(idOrName);
      if (record.status !== 'up') throw precondition(notUp(record));
      if (!this.canReach(record)) throw this.notHere(record);
      const att = this.attachments.get(record.id);
      const elsewhere = (r: VolumeRecord): string | undefined =>
        att === undefined &&
        r.attached !== undefined &&
        r.attached.for !== 'resync' &&
        r.attached.node_id !== this.nodeId
          ? r.attached.node_id
          : undefined;
      const next = await changeRecord(this.store, record.id, (r) => {
        if (r.status !== 'up') throw precondition(notUp(r));
        const node = elsewhere(r);
        if (node !== undefined) {
          throw new RunsElsewhere(node, `volume ${r.name} is attached on node ${node}: its writes are held there`);
        }
        return { ...r, status: 'migrating' };
      });
      this.noteRecord(next);
      let release: () => void = () => undefined;
      if (att !== undefined) {
        att.hold = new Promise<void>((resolve) => {
          release = resolve;
        });
        // Writes already past the hold finish first (acknowledged before the cut); later ones wait.
        await att.gate.withExclusive(async () => undefined);
      }
      let ended = false;
      return {
        end: async (outcome: HoldOutcome) => {
          if (ended) return;
          ended = true;
          try {
            await this.endHold(record.id, outcome);
          } finally {
            if (att !== undefined) {
              if (outcome.state === 'migrated') {
                att.sealed = `volume ${record.name} was migrated to ${outcome.to}: it is read-only here; detach it and use the volume there`;
              }
              att.hold = undefined;
              release();
            }
          }
        },
      };
    });
  }

  async endHold(idOrName: string, outcome: HoldOutcome): Promise<VolumeInfo> {
    const record = await this.recordOf(idOrName);
    if (record.status !== 'migrating') return this.volumeInfo(record);
    const next = await changeRecord(this.store, record.id, (r) => {
      if (r.status !== 'migrating') return r;
      return outcome.state === 'up' ? { ...r, status: 'up' } : { ...r, status: 'migrated', migrated_to: outcome.to };
    });
    this.noteRecord(next);
    return this.volumeInfo(next);
  }

  /** Keeps this node's copies of a volume's record current after a change of its status. */
  private noteRecord(next: VolumeRecord): void {
    const v = this.volumes.get(next.id);
    if (v !== undefined) v.record = next;
    const att = this.attachments.get(next.id);
    if (att !== undefined) att.record = next;
  }

  async openExport(name: string, options: OpenExportOptions = {}): Promise<BlockDevice> {
    if (name.includes('@')) return this.openSnapshotExport(name);
    const record = await this.recordOf(name);
    if (record.status !== 'up') throw precondition(notUp(record));
    return this.openWriter(record, options.holder ?? 'a local opener');
  }

  /** A snapshot's read-only export: from this node's replica when it holds the snapshot, else a holder's. */
  private async openSnapshotExport(name: string): Promise<BlockDevice> {
    const { snap, volume } = await this.snapshotOf(name);
    const holders = snapshotHolders(snap, volume);
    if (holders.includes(this.nodeId) && holds(volume, this.nodeId)) {
      const v = await this.syncVolume(volume);
      const cipher = await this.cipherFor(name, volume.encryption);
      // Looked up again: the snapshot may have gone while the key was being unwrapped.
      const s = this.snapshots.get(snap.id);
      if (s === undefined || this.volumes.get(volume.id) !== v) {
        cipher?.release();
        throw notFound(`snapshot ${name} has no volume`);
      }
      s.readers++;
      const coordinator = new VolumeCoordinator([this.snapshotView(v, s, name, cipher)], { localNodeId: this.nodeId });
      return new VolumeDevice(name, snap.size, true, coordinator, async () => {
        s.readers--;
        await coordinator.close();
      });
    }
    if (this.connector === undefined) throw this.notHere(volume);
    let lastError: unknown = new FerryError('UNAVAILABLE', `no node holds snapshot ${name}`);
    for (const node of holders.filter((n) => n !== this.nodeId)) {
      try {
        const replica = await this.connector.open(node, {
          volumeId: volume.id,
          epoch: volume.epoch ?? 0,
          snapshotId: snap.id,
        });
        const coordinator = new VolumeCoordinator([replica], { localNodeId: this.nodeId });
        return new VolumeDevice(name, snap.size, true, coordinator, () => coordinator.close());
      } catch (err: unknown) {
        lastError = err;
      }
    }
    throw lastError;
  }

  /** Attaches of one volume on this node run one after another (other volumes' do not wait). */
  private openWriter(record: VolumeRecord, holder: string, forResync = false): Promise<BlockDevice> {
    const run = (this.attaching.get(record.id) ?? Promise.resolve()).then(() =>
      this.openWriterLocked(record, holder, forResync),
    );
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    this.attaching.set(record.id, tail);
    void tail.then(() => {
      if (this.attaching.get(record.id) === tail) this.attaching.delete(record.id);
    });
    return run;
  }

  /**
   * Attaches a volume for writing on this node: one writer cluster-wide (the attach lock), the epoch and `attached`
   * in the record (C1), a coordinator over the in-sync replicas (this node's and, through the connector, the
   * others'). A shared volume's later opens on this node share the attachment; the limit of one attach point holds
   * for shared volumes too (their writers all go through one node). This node's own attach for a resync (R19) gives
   * way to any other.
   */
  private async openWriterLocked(record: VolumeRecord, holder: string, forResync: boolean): Promise<BlockDevice> {
    await this.giveUpResync(record.id);
    let att = this.attachments.get(record.id);
    if (att !== undefined) {
      // A writer that is disconnecting (flushing) is waited for, so a client can reconnect at once.
      const leaving = [...att.devices.keys()].map((d) => d.closing).filter((p) => p !== undefined);
      if (leaving.length > 0 && leaving.length === att.devices.size) {
        await Promise.allSettled(leaving);
        await att.detached;
      }
      att = this.attachments.get(record.id);
    }
    if (att !== undefined) {
      if (!att.record.shared) {
        const by = [...att.devices.values()].map((h) => `${h.client} since ${h.since}`).join(', ') || 'another writer';
        throw precondition(
          `volume ${record.name} is already attached by ${by}; disconnect it first (or create the volume with --shared)`,
        );
      }
      // A shared volume's later opener proves it can unwrap the key, then uses the attachment's coordinator.
      (await this.cipherFor(record.name, record.encryption))?.release();
      return this.addDevice(att, holder);
    }
    if (!this.canReach(record)) throw this.notHere(record);
    const lock = await this.takeLock(record, forResync);
    const since = new Date().toISOString();
    let recorded = false;
    try {
      const attached = await changeRecord(
        this.store,
        record.id,
        (r) => {
          if (r.status !== record.status) throw precondition(`volume ${r.name} is ${r.status} now; try again`);
          return {
            ...r,
            epoch: lock.revision,
            attached: { node_id: this.nodeId, since, ...(forResync && { for: 'resync' as const }) },
          };
        },
        [],
        [{ key: lock.key, modRevision: lock.revision }],
      );
      recorded = true;
      const { coordinator, local, record: now } = await this.openForWriter(attached, lock);
      this.recordFailures(coordinator, attached.id, lock, local);
      const made: Attachment = {
        record: now,
        lock,
        epoch: lock.revision,
        coordinator,
        devices: new Map(),
        gate: new Gate(),
        detached: Promise.resolve(),
        ...(local !== undefined && { local }),
        ...(forResync && { forResync }),
      };
      this.attachments.set(record.id, made);
      this.resync?.poke();
      return this.addDevice(made, holder);
    } catch (err: unknown) {
      if (recorded) await this.clearAttached(record.id, lock.revision);
      await this.releaseLock(record.id, lock);
      throw err;
    }
  }

  private addDevice(att: Attachment, holder: string): VolumeDevice {
    const device: VolumeDevice = new VolumeDevice(
      att.record.name,
      att.record.size,
      false,
      att.coordinator,
      () => this.deviceClosed(att, device),
      att.gate,
      () => {
        if (att.sealed !== undefined) throw new FerryError('PERMISSION_DENIED', att.sealed);
        return att.hold;
      },
    );
    att.devices.set(device, { client: holder, since: new Date().toISOString() });
    return device;
  }

  /**
   * Attaches volume `record` here to resync its replicas (R19: the caller read it attached nowhere, up, with an
   * in-sync replica here; an attach made since holds the lock, which this attach then does not get); the resync
   * manager closes the device when the copies are done, or at once when another use of the volume asks for it
   * (`giveUpResync` here, YIELD_PREFIX from other nodes).
   */
  private attachForResync(record: VolumeRecord): Promise<BlockDevice> {
    return this.openWriter(record, 'a resync of its replicas (no client attached it)', true);
  }

  /** Ends this node's attach of volume `volumeId` for a resync (R19), if it has one: another use needs the volume. */
  private async giveUpResync(volumeId: string): Promise<void> {
    const att = this.attachments.get(volumeId);
    if (att?.forResync !== true) return;
    await this.resync?.giveUp(volumeId);
    // Closed here as well should the manager not have known it.
    for (const d of [...att.devices.keys()]) await d.close().catch(() => undefined);
    await att.detached;
  }

  /** The last device of an attachment closed (flushed): close the replicas, clear `attached`, release the lock. */
  private async deviceClosed(att: Attachment, device: VolumeDevice): Promise<void> {
    att.devices.delete(device);
    if (att.devices.size > 0 || this.attachments.get(att.record.id) !== att) return;
    att.detached = this.detach(att);
    await att.detached;
  }

  private async detach(att: Attachment): Promise<void> {
    try {
      await this.resync?.stop(att.record.id);
      // The record first: from then on an attach on another node waits for the lock (no client's attach is recorded)
      // instead of being refused while the replicas close (a client that reconnects elsewhere at once).
      await this.clearAttached(att.record.id, att.epoch);
      await att.coordinator.close().catch((err: unknown) => {
        process.emitWarning(`closing the replicas of ${att.record.name} failed: ${String(err)}`, 'FerryEngineWarning');
      });
    } finally {
      this.attachments.delete(att.record.id);
      await this.releaseLock(att.record.id, att.lock);
    }
  }

  /** Removes `attached` from the record when it is still this node's tenure `epoch` (C1). */
  private async clearAttached(volumeId: string, epoch: number): Promise<void> {
    try {
      await changeRecord(this.store, volumeId, (r) => {
        if (r.epoch !== epoch || r.attached?.node_id !== this.nodeId) return r;
        const { attached: _, ...rest } = r;
        return rest;
      });
    } catch (err: unknown) {
      if (isFerryError(err, 'NOT_FOUND')) return;
      process.emitWarning(`clearing the attach of volume ${volumeId} failed: ${String(err)}`, 'FerryEngineWarning');
    }
  }

  async close(): Promise<void> {
    await this.haUpdater?.close();
    await this.resync?.close();
    for (const att of [...this.attachments.values()]) {
      for (const d of [...att.devices.keys()]) await d.close().catch(() => undefined);
    }
    await this.background;
    await this.collecting;
    await this.guard.settled();
    await this.meta.run(async () => {
      await this.layers.closeAll();
      if (this.ownsStore) await this.store.close();
    });
  }
}

/** A replica's resync progress for inspect: copied of total, the rate and the ETA when known. */
/** A list of ids or labels (`replica_nodes`, `racks`, `zones`): non-empty strings, no repeats; undefined when absent. */
function validateNodeList(field: string, value: unknown): string[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string' || v.length === 0)) {
    throw invalidArgument(field, 'must be a list of non-empty strings');
  }
  if (new Set(value).size !== value.length) throw invalidArgument(field, 'names an entry twice');
  return [...(value as string[])];
}

/** Whether a new volume is to be encrypted: asked by the request or by its `ferry.io/encrypted` label. */
function wantsEncryption(asked: boolean, labels: Record<string, string>): boolean {
  const label = labels[ENCRYPTED_LABEL];
  if (label !== undefined && label !== 'true') {
    throw invalidArgument(`labels.${ENCRYPTED_LABEL}`, 'must be "true" (or absent: use spec.encrypted to choose)');
  }
  return asked || label === 'true';
}

/**
 * A clone's labels: the ones asked for, plus, when its origin is encrypted (the clone shares its origin's layers and
 * so its key), `ferry.io/encrypted=true` and the origin's KEK labels unless given. A plaintext origin gives a
 * plaintext clone: asking for encryption then is INVALID_ARGUMENT.
 */
function cloneLabelsOf(
  asked: Record<string, string>,
  origin: VolumeRecord | undefined,
  encryption: VolumeEncryption | undefined,
): Record<string, string> {
  if (encryption === undefined) {
    if (asked[ENCRYPTED_LABEL] !== undefined) {
      throw invalidArgument(
        `labels.${ENCRYPTED_LABEL}`,
        'a clone is encrypted exactly when its origin is, and this origin is not',
      );
    }
    return asked;
  }
  const labels: Record<string, string> = { ...asked, [ENCRYPTED_LABEL]: 'true' };
  for (const key of [KEK_LABEL, KEY_PROVIDER_LABEL]) {
    const value = origin?.labels[key];
    if (value !== undefined && labels[key] === undefined) labels[key] = value;
  }
  return validateLabels('labels', labels);
}

/** Why a volume that is not 'up' cannot be attached. */
function notUp(r: VolumeRecord): string {
  switch (r.status) {
    case 'migrating':
      return `volume ${r.name} is being cut over to another cluster (a migration holds its writes); try again in a few seconds`;
    case 'migrated':
      return `volume ${r.name} was migrated to ${r.migrated_to ?? 'another cluster'}: it is read-only here; use the volume there, or read its snapshots here (VOLUME@SNAPSHOT)`;
    default:
      return `volume ${r.name} is ${r.status}: its restore has not completed, so it cannot be attached`;
  }
}
