import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { FerryError, formatSize, invalidArgument, isFerryError, notFound } from '../../common/index.js';
import { loadNodeId } from '../cluster/node-id.js';
import { SqliteStore } from '../cluster/sqlite-store.js';
import type { ClusterStore, StoreOp } from '../cluster/types.js';
import { Catalog, catalogKeys, del, holdersOf, holds, put } from './catalog.js';
import { type PlacementPort, type ReplicaConnector, RunsElsewhere } from './cluster-ports.js';
import { BACKUP_SNAPSHOT_LABEL, MAX_BACKUP_SNAPSHOTS, MAX_SNAPSHOTS } from './constants.js';
import { VolumeCoordinator } from './coordinator.js';
import { VolumeDevice } from './device.js';
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
import { LocalLayerKeys, upgradeLayout } from './local-layers.js';
import { LocalReplica, type ViewSource } from './local-replica.js';
import { Mutex } from './mutex.js';
import type { SnapshotRecord, VolumeRecord } from './records.js';
import { isNoSpace, SpaceGuard, type SpaceStatus } from './space.js';
import type {
  BlockDevice,
  ChangedBlocksPage,
  ChangedBlocksRequest,
  CloneVolumeRequest,
  CreateSnapshotRequest,
  CreateVolumeRequest,
  GroupSnapshotRequest,
  OpenExportOptions,
  SnapshotInfo,
  UpdateVolumeRequest,
  VolumeEngine,
  VolumeHolder,
  VolumeInfo,
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
}

interface VolumeState extends ViewSource {
  record: VolumeRecord;
  layer: Layer;
  writers: number;
  /** The open writable devices (more than one only for shared volumes), with who opened each and when. */
  devices: Map<VolumeDevice, VolumeHolder>;
  /** The coordinator while the volume is open (created by the first open, closed with the last device). */
  coordinator?: VolumeCoordinator;
  /** The replica's change counter (Replica.generation). */
  progress: { generation: number };
  /** This volume's snapshots by name. */
  snaps: Map<string, SnapshotState>;
}

interface SnapshotState {
  record: SnapshotRecord;
  layer: Layer;
  readers: number;
}

/** Opens (creating when new) the block engine of a node. */
export async function openEngine(options: EngineOptions): Promise<VolumeEngine> {
  const layersDir = join(options.dataDir, 'layers');
  await mkdir(layersDir, { recursive: true, mode: 0o700 });
  const space = options.space ?? (await SpaceGuard.open({ dataDir: options.dataDir, reserveBytes: 0 }));
  const nodeId = options.nodeId ?? (await loadNodeId(options.dataDir));
  const store = options.store ?? new SqliteStore(join(options.dataDir, 'cluster.db'));
  const engine = new Engine(store, layersDir, options.store === undefined, options.keys, space, nodeId);
  engine.ports = { replicas: options.replicas, placement: options.placement };
  await engine.load();
  return engine;
}

class Engine implements VolumeEngine {
  private readonly volumes = new Map<string, VolumeState>();
  private readonly volumesByName = new Map<string, VolumeState>();
  private readonly snapshots = new Map<string, SnapshotState>();
  private readonly tracker = new IoTracker();
  private readonly layers: LayerSet;
  private readonly local: LocalLayerKeys;
  private readonly catalog: Catalog;
  private readonly meta = new Mutex();
  /** Layer collections left by deleted snapshots, one after another (collectLater). */
  private collecting: Promise<void> = Promise.resolve();
  /** The cluster ports (EngineOptions.replicas, .placement). */
  ports: { replicas?: ReplicaConnector | undefined; placement?: PlacementPort | undefined } = {};
  /** ha-update steps and their background fills (node/engine/ha-update.ts), made on first use. */
  private haUpdater?: HaUpdater;

  private get ha(): HaUpdater {
    this.haUpdater ??= new HaUpdater({
      store: this.store,
      nodeId: this.nodeId,
      replicas: this.ports.replicas,
      placement: this.ports.placement,
      useCoordinator: async (record) => {
        const v = this.volumes.get(record.id);
        if (v?.coordinator === undefined) {
          // Opening a coordinator for a detached volume (attach lock, epoch, every replica) is the attach of issue 22.
          throw precondition(`volume ${record.name} must be attached on this node for its replicas to change`);
        }
        return { coordinator: v.coordinator, epoch: record.epoch ?? 0, release: async () => undefined };
      },
      attachedHere: (id) => this.volumes.get(id)?.coordinator,
      recordChanged: (record) => {
        const v = this.volumes.get(record.id);
        if (v !== undefined) v.record = record;
      },
    });
    return this.haUpdater;
  }

  constructor(
    private readonly store: ClusterStore,
    layersDir: string,
    private readonly ownsStore: boolean,
    private readonly keys: VolumeKeyResolver | undefined,
    private readonly guard: SpaceGuard,
    private readonly nodeId: string,
  ) {
    this.local = new LocalLayerKeys(nodeId);
    this.catalog = new Catalog(store);
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
    );
  }

  /** Loads this node's volumes (those the catalog says it holds), their snapshots and its layers. */
  async load(): Promise<void> {
    await upgradeLayout(this.store, this.local);
    await this.layers.load();
    for (const value of await this.catalog.volumes()) if (holds(value, this.nodeId)) this.addVolume(value);
    for (const value of await this.catalog.snapshots()) if (this.volumes.has(value.volume_id)) this.addSnapshot(value);
    // On a full disk the collection may need the reserve; failing it leaves the layers to the next start, and the
    // node still starts (its deletes are what frees the disk).
    try {
      await this.guard.withReserve(() => this.layers.collectAll());
    } catch (err: unknown) {
      if (!isNoSpace(err)) throw err;
      process.emitWarning(`collecting layers at start-up failed: ${String(err)}`, 'FerryEngineWarning');
    }
  }

  spaceStatus(): Promise<SpaceStatus> {
    return this.guard.status();
  }

  private volumeTopped(layer: Layer): VolumeState | undefined {
    for (const v of this.volumes.values()) if (v.layer === layer) return v;
    return undefined;
  }

  private addVolume(record: VolumeRecord): VolumeState {
    const state: VolumeState = {
      record,
      layer: this.layers.get(record.top),
      writers: 0,
      devices: new Map(),
      snaps: new Map(),
      gate: new Gate(),
      locks: new KeyedLock(),
      tracker: this.tracker,
      space: this.guard,
      top: () => state.layer,
      progress: { generation: 0 },
    };
    this.volumes.set(record.id, state);
    this.volumesByName.set(record.name, state);
    this.layers.ref(state.layer);
    return state;
  }

  private addSnapshot(record: SnapshotRecord): SnapshotState {
    const state: SnapshotState = { record, layer: this.layers.get(record.layer), readers: 0 };
    this.snapshots.set(record.id, state);
    this.volumes.get(record.volume_id)?.snaps.set(record.name, state);
    this.layers.ref(state.layer);
    return state;
  }

  // ---- lookups -------------------------------------------------------------------------------------------------

  private findVolume(idOrName: string, field = 'volume_id'): VolumeState {
    if (typeof idOrName !== 'string' || idOrName.length === 0)
      throw invalidArgument(field, 'a volume id or name is required');
    const byId = this.volumes.get(idOrName);
    if (byId !== undefined) return byId;
    const byName = this.volumesByName.get(idOrName);
    if (byName !== undefined) return byName;
    throw notFound(`volume ${JSON.stringify(idOrName)} not found: list volumes with 'ferry volume list'`);
  }

  private findSnapshot(idOrExport: string, volume?: VolumeState, field = 'snapshot_id'): SnapshotState {
    if (typeof idOrExport !== 'string' || idOrExport.length === 0)
      throw invalidArgument(field, 'a snapshot id is required');
    const byId = this.snapshots.get(idOrExport);
    if (byId !== undefined && (volume === undefined || byId.record.volume_id === volume.record.id)) return byId;
    let volName: string | undefined;
    let snapName = idOrExport;
    const at = idOrExport.indexOf('@');
    if (at >= 0) {
      volName = idOrExport.slice(0, at);
      snapName = idOrExport.slice(at + 1);
    }
    const owner = volName !== undefined ? this.findVolume(volName) : volume;
    if (owner !== undefined && (volume === undefined || owner === volume)) {
      const s = owner.snaps.get(snapName);
      if (s !== undefined) return s;
    }
    const where = volume !== undefined ? ` of volume ${volume.record.name}` : '';
    throw notFound(
      `snapshot ${JSON.stringify(idOrExport)}${where} not found: list them with 'ferry volume snapshot list'`,
    );
  }

  /**
   * The catalog record of the volume `ref` names (a volume id or name, a snapshot id, or `VOLUME@SNAPSHOT`) when
   * another node holds it; undefined when no volume of the cluster matches or this node holds it.
   */
  private async heldElsewhere(ref: string): Promise<VolumeRecord | undefined> {
    if (typeof ref !== 'string' || ref.length === 0) return undefined;
    const at = ref.indexOf('@');
    let record = await this.catalog.findVolume(at >= 0 ? ref.slice(0, at) : ref);
    if (record === undefined && at < 0) {
      const snap = await this.catalog.snapshot(ref);
      if (snap !== undefined) record = await this.catalog.volume(snap.volume_id);
    }
    return record !== undefined && !this.volumes.has(record.id) ? record : undefined;
  }

  /**
   * FAILED_PRECONDITION for an operation on a volume this node does not hold: it names the node that does, as
   * RunsElsewhere (the API forwards the request there) when the record names one.
   */
  private notHere(record: VolumeRecord): FerryError {
    const message = `volume ${record.name} is held by ${holdersOf(record)}, not by this node (${this.nodeId}): attach it, and take its snapshots, clones and backups, on the node that holds it`;
    const holder = record.attached?.node_id ?? record.replicas?.[0]?.node_id;
    return holder === undefined ? precondition(message) : new RunsElsewhere(holder, message);
  }

  /** Turns a NOT_FOUND for `ref` into `notHere` when another node holds what it names. */
  private async elsewhere(err: unknown, ref: string): Promise<unknown> {
    if (!isFerryError(err, 'NOT_FOUND')) return err;
    const record = await this.heldElsewhere(ref);
    return record === undefined ? err : this.notHere(record);
  }

  /** `findVolume`, where a volume another node holds is FAILED_PRECONDITION naming that node. */
  private async localVolume(idOrName: string, field = 'volume_id'): Promise<VolumeState> {
    try {
      return this.findVolume(idOrName, field);
    } catch (err: unknown) {
      throw await this.elsewhere(err, idOrName);
    }
  }

  /** `findSnapshot`, where a snapshot of a volume another node holds is FAILED_PRECONDITION naming that node. */
  private async localSnapshot(idOrExport: string, volume?: VolumeState, field = 'snapshot_id'): Promise<SnapshotState> {
    try {
      return this.findSnapshot(idOrExport, volume, field);
    } catch (err: unknown) {
      throw volume === undefined ? await this.elsewhere(err, idOrExport) : err;
    }
  }

  /** A volume of the cluster by name, this node's or another's. */
  private async namedInCluster(name: string): Promise<VolumeRecord | undefined> {
    const mine = this.volumesByName.get(name);
    if (mine !== undefined) return mine.record;
    return this.catalog.named(name);
  }

  private snapshotsOf(volume: VolumeState): SnapshotState[] {
    return [...volume.snaps.values()];
  }

  /**
   * RESOURCE_EXHAUSTED when `volume` has no room for one more snapshot of this kind: MAX_SNAPSHOTS of the user's,
   * MAX_BACKUP_SNAPSHOTS of those backups keep (labelled BACKUP_SNAPSHOT_LABEL), each counted on its own.
   */
  private checkSnapshotRoom(volume: VolumeState, labels: Readonly<Record<string, string>> | undefined): void {
    const isBackup = (l: Readonly<Record<string, string>> | undefined) => l?.[BACKUP_SNAPSHOT_LABEL] !== undefined;
    const backup = isBackup(labels);
    const count = this.snapshotsOf(volume).filter((s) => isBackup(s.record.labels) === backup).length;
    const limit = backup ? MAX_BACKUP_SNAPSHOTS : MAX_SNAPSHOTS;
    if (count < limit) return;
    throw new FerryError(
      'RESOURCE_EXHAUSTED',
      backup
        ? `volume ${volume.record.name} has ${count} backup snapshots (one per repository it is backed up to), the most it may have; stop backing it up to some repositories`
        : `volume ${volume.record.name} has ${count} snapshots, the most a volume may have; delete one first`,
    );
  }

  private nameTaken(name: string): VolumeState | undefined {
    return this.volumesByName.get(name);
  }

  private volumeInfo(v: VolumeState): VolumeInfo {
    return this.infoOf(v.record, {
      snapshot_count: v.snaps.size,
      attached: v.writers > 0,
      ...(v.devices.size > 0 && { attached_by: [...v.devices.values()].map((holder) => ({ ...holder })) }),
      bytes_used: v.layer.bytesUsed,
      bytes_used_total: [...new Set([v.layer, ...[...v.snaps.values()].map((s) => s.layer)])].reduce(
        (sum, layer) => sum + layer.bytesUsed,
        0,
      ),
    });
  }

  /** The catalog's view of a volume another node holds: usage and attachment are known only there. */
  private remoteInfo(r: VolumeRecord, snapshotCount: number): VolumeInfo {
    return this.infoOf(r, { snapshot_count: snapshotCount, attached: false, bytes_used: 0, bytes_used_total: 0 });
  }

  /** What the catalog record says of a volume, with `here`: what the node that serves it knows (usage, holders). */
  private infoOf(
    r: VolumeRecord,
    here: Pick<VolumeInfo, 'snapshot_count' | 'attached' | 'attached_by' | 'bytes_used' | 'bytes_used_total'>,
  ): VolumeInfo {
    const info: VolumeInfo = {
      id: r.id,
      name: r.name,
      size: r.size,
      ha_level: r.ha_level,
      labels: { ...r.labels },
      created: r.created,
      status: r.status,
      shared: r.shared,
      encrypted: r.encryption !== undefined,
      ...here,
      replicas: (r.replicas ?? []).map((replica) => ({ node_id: replica.node_id, state: replica.state ?? 'in-sync' })),
      held_here: holds(r, this.nodeId),
    };
    if (r.parent_snapshot_id !== undefined) info.parent_snapshot_id = r.parent_snapshot_id;
    if (r.encryption !== undefined) {
      info.encryption = { kek: r.encryption.kek, key_provider: r.encryption.key_provider };
      const unavailable = this.keys?.unusable?.(r.encryption);
      if (unavailable !== undefined) info.unavailable = unavailable;
    }
    return info;
  }

  private snapshotInfo(s: SnapshotState): SnapshotInfo {
    return this.snapshotRecordInfo(s.record, this.volumes.get(s.record.volume_id)?.record.name ?? '');
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

  // ---- volumes -------------------------------------------------------------------------------------------------

  async createVolume(request: CreateVolumeRequest): Promise<{ volume: VolumeInfo; created: boolean }> {
    const name = validateName('name', request.name);
    const size = validateSize('spec.size', request.size);
    const ha = validateHaLevel('spec.ha_level', request.ha_level);
    const labels = validateLabels('labels', request.labels);
    const encrypted = wantsEncryption(request.encrypted === true, labels);
    if (encrypted && labels[ENCRYPTED_LABEL] === undefined) {
      labels[ENCRYPTED_LABEL] = 'true';
      validateLabels('labels', labels);
    }
    // The provider is called outside the metadata lock (a slow KMS holds up nothing else), and only for a new name.
    let prepared: { id: string; encryption: VolumeEncryption } | undefined;
    if (encrypted && this.nameTaken(name) === undefined) prepared = await this.newVolumeKey(name, labels);
    return this.meta.run(async () => {
      const existing = await this.namedInCluster(name);
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
        const mine = this.volumes.get(existing.id);
        const volume =
          mine !== undefined
            ? this.volumeInfo(mine)
            : this.remoteInfo(existing, (await this.catalog.snapshotsOf(existing.id)).length);
        return { volume, created: false };
      }
      const what = `volume ${name} cannot be created`;
      await this.guard.checkRoom(what);
      if (encrypted && prepared === undefined) prepared = await this.newVolumeKey(name, labels);
      const layer = this.layers.create(undefined);
      const record: VolumeRecord = {
        id: prepared?.id ?? newId(),
        name,
        size,
        ha_level: ha,
        labels,
        created: new Date().toISOString(),
        shared: request.shared === true,
        top: layer.id,
        status: request.restoring === true ? 'restoring' : 'up',
        replicas: [{ node_id: this.nodeId }],
      };
      if (prepared !== undefined) record.encryption = prepared.encryption;
      await this.commitOrDiscard(
        [this.local.put(layer.record), put.volume(record), put.name(record)],
        [layer],
        what,
        name,
      );
      return { volume: this.volumeInfo(this.addVolume(record)), created: true };
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

  /** Every volume of the cluster: this node's from memory, the others' from the catalog. */
  async listVolumes(): Promise<VolumeInfo[]> {
    const infos = [...this.volumes.values()].map((v) => this.volumeInfo(v));
    const others = (await this.catalog.volumes()).filter((r) => !this.volumes.has(r.id));
    if (others.length > 0) {
      const counts = new Map<string, number>();
      for (const s of await this.catalog.snapshots()) counts.set(s.volume_id, (counts.get(s.volume_id) ?? 0) + 1);
      for (const r of others) infos.push(this.remoteInfo(r, counts.get(r.id) ?? 0));
    }
    return infos.sort((a, b) => a.name.localeCompare(b.name));
  }

  async inspectVolume(idOrName: string): Promise<VolumeInfo> {
    try {
      return this.volumeInfo(this.findVolume(idOrName));
    } catch (err: unknown) {
      const record = isFerryError(err, 'NOT_FOUND') ? await this.heldElsewhere(idOrName) : undefined;
      if (record === undefined || (record.id !== idOrName && record.name !== idOrName)) throw err;
      return this.remoteInfo(record, (await this.catalog.snapshotsOf(record.id)).length);
    }
  }

  async openProblem(idOrName: string): Promise<string | undefined> {
    let v: VolumeState;
    try {
      v = await this.localVolume(idOrName);
    } catch (err: unknown) {
      if (isFerryError(err, 'FAILED_PRECONDITION')) return err.message;
      throw err;
    }
    if (v.record.status !== 'up') {
      return `volume ${v.record.name} is ${v.record.status}: its restore has not completed, so it cannot be attached`;
    }
    try {
      // Unwraps the data key as an open would (without taking a writer slot), then forgets it.
      (await this.cipherFor(v.record.name, v.record.encryption))?.release();
    } catch (err: unknown) {
      return err instanceof Error ? err.message : String(err);
    }
    return undefined;
  }

  updateVolume(idOrName: string, request: UpdateVolumeRequest): Promise<VolumeInfo> {
    return this.meta.run(async () => {
      const v = await this.localVolume(idOrName);
      if (request.ha_level !== undefined) {
        v.record = await this.ha.update(v.record, request);
        if (request.size === undefined && request.labels === undefined) return this.volumeInfo(v);
      }
      const next: VolumeRecord = { ...v.record, labels: { ...v.record.labels } };
      if (request.size !== undefined) {
        const size = validateSize('spec.size', request.size);
        if (size < v.record.size) {
          throw invalidArgument('spec.size', `volumes cannot shrink: ${v.record.name} is ${formatSize(v.record.size)}`);
        }
        next.size = size;
      }
      if (request.labels !== undefined) {
        const asked = request.labels[ENCRYPTED_LABEL];
        const current = v.record.labels[ENCRYPTED_LABEL];
        if (asked !== undefined && asked !== (current ?? '')) {
          throw invalidArgument(`labels.${ENCRYPTED_LABEL}`, 'is set when a volume is created and cannot change');
        }
        for (const [k, val] of Object.entries(validateLabels('labels', request.labels, true))) {
          if (val === '') delete next.labels[k];
          else next.labels[k] = val;
        }
        validateLabels('labels', next.labels);
      }
      failpoint('update.before-commit');
      await this.store.commit([put.volume(next)]);
      failpoint('update.after-commit');
      v.record = next;
      return this.volumeInfo(v);
    });
  }

  deleteVolume(idOrName: string): Promise<void> {
    return this.meta.run(async () => {
      const v = await this.localVolume(idOrName);
      if (v.writers > 0) throw precondition(`volume ${v.record.name} is attached; disconnect its NBD client first`);
      const snaps = this.snapshotsOf(v);
      const open = snaps.find((s) => s.readers > 0);
      if (open !== undefined) {
        throw precondition(`snapshot ${v.record.name}@${open.record.name} is open for reading; disconnect it first`);
      }
      const top = v.layer;
      await this.guard.withReserve(() =>
        this.store.commit([
          del.volume(v.record.id),
          del.name(v.record.name),
          this.local.del(top.id),
          ...snaps.map((s) => del.snapshot(s.record.id)),
        ]),
      );
      failpoint('volume-delete.after-commit');
      this.volumes.delete(v.record.id);
      this.volumesByName.delete(v.record.name);
      this.layers.unref(top);
      for (const s of snaps) {
        this.snapshots.delete(s.record.id);
        this.layers.unref(s.layer);
      }
      const parent = top.parent;
      this.layers.discard(top);
      await this.tracker.drain();
      await top.destroy();
      const orphans = snaps.map((s) => s.layer);
      if (parent !== undefined) orphans.push(parent);
      try {
        await this.collectFreeing(orphans);
      } catch (err: unknown) {
        // The volume is gone (its records are); what its layers still hold is collected at the next start.
        if (!isNoSpace(err)) throw err;
        process.emitWarning(
          `collecting the layers of volume ${v.record.name} failed: ${String(err)}`,
          'FerryEngineWarning',
        );
      }
    });
  }

  cloneVolume(request: CloneVolumeRequest): Promise<VolumeInfo> {
    return this.meta.run(async () => {
      const name = validateName('name', request.name);
      const labels = validateLabels('labels', request.labels);
      if ((await this.namedInCluster(name)) !== undefined) {
        throw new FerryError('ALREADY_EXISTS', `volume ${name} already exists; pick another name for the clone`);
      }
      if (typeof request.parent_id !== 'string' || request.parent_id.length === 0) {
        throw invalidArgument('parent_id', 'the volume or snapshot to clone is required');
      }
      const what = `clone ${name} cannot be created`;
      await this.guard.checkRoom(what);
      const snap = this.trySnapshot(request.parent_id);
      if (snap !== undefined) {
        const origin = this.volumes.get(snap.record.volume_id);
        const encryption = origin?.record.encryption;
        const cloneLabels = cloneLabelsOf(labels, origin?.record, encryption);
        const top = this.layers.create(snap.layer);
        const record = this.newVolumeRecord(name, snap.record.size, cloneLabels, top, snap.record.id, encryption);
        failpoint('clone.before-commit');
        await this.commitOrDiscard(
          [this.local.put(top.record), put.volume(record), put.name(record)],
          [top],
          what,
          name,
        );
        failpoint('clone.after-commit');
        return this.volumeInfo(this.addVolume(record));
      }
      const source = await this.localVolume(request.parent_id, 'parent_id');
      const encryption = source.record.encryption;
      const cloneLabels = cloneLabelsOf(labels, source.record, encryption);
      return source.gate.withExclusive(async () => {
        const frozen = source.layer;
        await frozen.flush();
        const sourceTop = this.layers.create(frozen);
        const cloneTop = this.layers.create(frozen);
        const record = this.newVolumeRecord(name, source.record.size, cloneLabels, cloneTop, undefined, encryption);
        const sourceRecord = { ...source.record, top: sourceTop.id };
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
        );
        frozen.frozen = true;
        this.layers.unref(frozen);
        source.record = sourceRecord;
        source.layer = sourceTop;
        this.layers.ref(sourceTop);
        return this.volumeInfo(this.addVolume(record));
      });
    });
  }

  private trySnapshot(idOrExport: string): SnapshotState | undefined {
    try {
      return this.findSnapshot(idOrExport);
    } catch {
      return undefined;
    }
  }

  private newVolumeRecord(
    name: string,
    size: number,
    labels: Record<string, string>,
    top: Layer,
    parentSnapshot: string | undefined,
    encryption: VolumeEncryption | undefined,
  ): VolumeRecord {
    const record: VolumeRecord = {
      id: newId(),
      name,
      size,
      ha_level: 1,
      labels,
      created: new Date().toISOString(),
      shared: false,
      top: top.id,
      status: 'up',
      replicas: [{ node_id: this.nodeId }],
    };
    if (parentSnapshot !== undefined) record.parent_snapshot_id = parentSnapshot;
    if (encryption !== undefined) record.encryption = encryption;
    return record;
  }

  /**
   * Commits a create; on failure forgets the layers it made. No space is RESOURCE_EXHAUSTED naming `what`. With
   * `claim` (a new volume's name), the commit holds only while no node has taken that name since it was checked: two
   * nodes creating one name at once get one volume and one ALREADY_EXISTS, never two volumes of one name.
   */
  private async commitOrDiscard(ops: StoreOp[], created: Layer[], what: string, claim?: string): Promise<void> {
    let committed = true;
    try {
      if (claim === undefined) await this.store.commit(ops);
      else committed = (await this.store.txn([{ key: catalogKeys.name(claim), modRevision: 0 }], ops)).succeeded;
    } catch (err: unknown) {
      for (const l of created) this.layers.discard(l);
      if (isNoSpace(err)) throw await this.guard.exhaustedNow(what, err);
      throw err;
    }
    if (!committed) {
      for (const l of created) this.layers.discard(l);
      throw new FerryError(
        'ALREADY_EXISTS',
        `${what}: another node created volume ${claim} meanwhile; pick another name`,
      );
    }
  }

  // ---- snapshots -----------------------------------------------------------------------------------------------

  createSnapshot(volumeIdOrName: string, request: CreateSnapshotRequest): Promise<SnapshotInfo> {
    return this.meta.run(async () => {
      const v = await this.localVolume(volumeIdOrName);
      const name = validateName('name', request.name);
      const labels = validateLabels('labels', request.labels);
      if (v.snaps.has(name)) {
        throw new FerryError('ALREADY_EXISTS', `volume ${v.record.name} already has a snapshot named ${name}`);
      }
      this.checkSnapshotRoom(v, labels);
      const what = `snapshot ${name} of volume ${v.record.name} cannot be taken`;
      await this.guard.checkRoom(what);
      return v.gate.withExclusive(async () => {
        const id = newId();
        const staged = await this.coordinatorOf(v).snapshot(id);
        const record: SnapshotRecord = {
          id,
          name,
          volume_id: v.record.id,
          layer: staged.point,
          size: v.record.size,
          labels,
          created: new Date().toISOString(),
        };
        const volumeRecord = { ...v.record, top: staged.head };
        try {
          failpoint('snapshot.before-commit');
          await this.commitOrDiscard([...staged.ops, put.volume(volumeRecord), put.snapshot(record)], [], what);
        } catch (err: unknown) {
          staged.abandon();
          throw err;
        }
        failpoint('snapshot.after-commit');
        staged.commit();
        v.record = volumeRecord;
        return this.snapshotInfo(this.addSnapshot(record));
      });
    });
  }

  createSnapshots(requests: readonly GroupSnapshotRequest[]): Promise<SnapshotInfo[]> {
    return this.meta.run(async () => {
      const planned = [];
      for (const [i, request] of requests.entries()) {
        const v = await this.localVolume(request.volume_id, `[${i}].volume_id`);
        const name = validateName(`[${i}].name`, request.name);
        const labels = validateLabels(`[${i}].labels`, request.labels);
        if (v.snaps.has(name)) {
          throw new FerryError('ALREADY_EXISTS', `volume ${v.record.name} already has a snapshot named ${name}`);
        }
        this.checkSnapshotRoom(v, labels);
        planned.push({ v, name, labels });
      }
      if (new Set(planned.map((p) => p.v)).size !== planned.length) {
        throw invalidArgument('volume_id', 'a group names each volume once');
      }
      const what = `snapshots of ${planned.map((p) => p.v.record.name).join(', ')} cannot be taken`;
      await this.guard.checkRoom(what);
      // Exclusive on every volume, always in id order (no deadlock with another group), so writes to all are held
      // at the same moment: the snapshots are of one point in time.
      const ordered = [...planned].sort((a, b) => a.v.record.id.localeCompare(b.v.record.id));
      const entered: VolumeState[] = [];
      try {
        for (const p of ordered) {
          await p.v.gate.enterExclusive();
          entered.push(p.v);
        }
        const created = new Date().toISOString();
        const staged = [];
        try {
          for (const p of planned) {
            const id = newId();
            const replica = await this.coordinatorOf(p.v).snapshot(id);
            const record: SnapshotRecord = {
              id,
              name: p.name,
              volume_id: p.v.record.id,
              layer: replica.point,
              size: p.v.record.size,
              labels: p.labels,
              created,
            };
            staged.push({ p, replica, record, volumeRecord: { ...p.v.record, top: replica.head } });
          }
          await this.commitOrDiscard(
            staged.flatMap((s) => [...s.replica.ops, put.volume(s.volumeRecord), put.snapshot(s.record)]),
            [],
            what,
          );
        } catch (err: unknown) {
          for (const s of staged) s.replica.abandon();
          throw err;
        }
        return staged.map((s) => {
          s.replica.commit();
          s.p.v.record = s.volumeRecord;
          return this.snapshotInfo(this.addSnapshot(s.record));
        });
      } finally {
        for (const v of entered) v.gate.leaveExclusive();
      }
    });
  }

  async listSnapshots(volumeIdOrName: string): Promise<SnapshotInfo[]> {
    let infos: SnapshotInfo[];
    try {
      infos = this.snapshotsOf(this.findVolume(volumeIdOrName)).map((s) => this.snapshotInfo(s));
    } catch (err: unknown) {
      // Another node's volume: its snapshots as the catalog has them.
      const record = isFerryError(err, 'NOT_FOUND') ? await this.heldElsewhere(volumeIdOrName) : undefined;
      if (record === undefined || (record.id !== volumeIdOrName && record.name !== volumeIdOrName)) throw err;
      infos = (await this.catalog.snapshotsOf(record.id)).map((r) => this.snapshotRecordInfo(r, record.name));
    }
    return infos.sort((a, b) => a.created.localeCompare(b.created) || a.name.localeCompare(b.name));
  }

  async inspectSnapshot(idOrExport: string): Promise<SnapshotInfo> {
    try {
      return this.snapshotInfo(this.findSnapshot(idOrExport));
    } catch (err: unknown) {
      // A snapshot of another node's volume: as the catalog has it.
      const record = isFerryError(err, 'NOT_FOUND') ? await this.heldElsewhere(idOrExport) : undefined;
      if (record === undefined) throw err;
      const at = idOrExport.indexOf('@');
      const snaps = await this.catalog.snapshotsOf(record.id);
      const snap = snaps.find((r) => (at >= 0 ? r.name === idOrExport.slice(at + 1) : r.id === idOrExport));
      if (snap === undefined) throw err;
      return this.snapshotRecordInfo(snap, record.name);
    }
  }

  deleteSnapshot(idOrExport: string): Promise<void> {
    return this.meta.run(async () => {
      const s = await this.localSnapshot(idOrExport);
      if (s.readers > 0) throw precondition(`snapshot ${s.record.name} is open for reading; disconnect it first`);
      await this.guard.withReserve(() => this.store.commit([del.snapshot(s.record.id)]));
      failpoint('snapshot-delete.after-commit');
      this.snapshots.delete(s.record.id);
      this.volumes.get(s.record.volume_id)?.snaps.delete(s.record.name);
      this.layers.unref(s.layer);
      this.collectLater(s.layer);
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
    await this.collecting;
  }

  restoreSnapshot(volumeIdOrName: string, snapshotIdOrExport: string): Promise<void> {
    return this.meta.run(async () => {
      const v = await this.localVolume(volumeIdOrName);
      const s = this.findSnapshot(snapshotIdOrExport, v);
      if (v.writers > 0) throw precondition(`volume ${v.record.name} is attached; disconnect its NBD client first`);
      const what = `volume ${v.record.name} cannot be restored from snapshot ${s.record.name}`;
      await this.guard.checkRoom(what);
      const old = v.layer;
      const top = this.layers.create(s.layer);
      const record = { ...v.record, top: top.id };
      failpoint('restore.before-commit');
      await this.commitOrDiscard([this.local.put(top.record), put.volume(record), this.local.del(old.id)], [top], what);
      failpoint('restore.after-commit');
      const parent = old.parent;
      this.layers.unref(old);
      this.layers.discard(old);
      v.record = record;
      v.layer = top;
      this.layers.ref(top);
      await this.tracker.drain();
      await old.destroy();
      if (parent !== undefined) await this.layers.collect(parent);
    });
  }

  async changedBlocks(volumeIdOrName: string, request: ChangedBlocksRequest): Promise<ChangedBlocksPage> {
    const v = await this.localVolume(volumeIdOrName);
    const offset = request.offset ?? 0;
    const limit = request.limit ?? 1000;
    if (!Number.isSafeInteger(offset) || offset < 0) throw invalidArgument('offset', 'must be a non-negative integer');
    if (!Number.isSafeInteger(limit) || limit < 1 || limit > 100_000) {
      throw invalidArgument('limit', 'must be between 1 and 100000');
    }
    const target =
      request.target_snapshot_id !== undefined
        ? this.findSnapshot(request.target_snapshot_id, v, 'target_snapshot_id')
        : undefined;
    const base =
      request.base_snapshot_id !== undefined
        ? this.findSnapshot(request.base_snapshot_id, v, 'base_snapshot_id')
        : undefined;
    if (base !== undefined && target !== undefined && base.record.created > target.record.created) {
      throw invalidArgument('base_snapshot_id', 'the base snapshot must be older than the target snapshot');
    }
    return this.coordinatorOf(v).changedBlocks({
      ...(base !== undefined && { base_snapshot_id: base.record.id }),
      ...(target !== undefined && { target_snapshot_id: target.record.id }),
      size: target?.record.size ?? v.record.size,
      offset,
      limit,
    });
  }

  /** This node's replica of a local volume; `cipher` for an open of an encrypted volume (it then owns it). */
  private localReplica(v: VolumeState, cipher: GranuleCipher | undefined): LocalReplica {
    return new LocalReplica(this.nodeId, v.record.name, v, cipher, {
      layers: this.layers,
      local: this.local,
      progress: v.progress,
      layerOf: (snapshotId) => {
        const s = this.snapshots.get(snapshotId);
        if (s === undefined || s.record.volume_id !== v.record.id) throw notFound(`snapshot ${snapshotId} not found`);
        return s.layer;
      },
      setTop: (layer) => {
        v.layer = layer;
        this.layers.ref(layer);
      },
    });
  }

  /**
   * The volume's coordinator: the open one, or (for a snapshot or a diff of a volume nobody has open) one over its
   * replicas without a key (neither reads data).
   */
  private coordinatorOf(v: VolumeState): VolumeCoordinator {
    return v.coordinator ?? new VolumeCoordinator([this.localReplica(v, undefined)]);
  }

  // ---- exports -------------------------------------------------------------------------------------------------

  async listExports(): Promise<string[]> {
    const names: string[] = [];
    for (const v of this.volumes.values()) {
      names.push(v.record.name);
      for (const s of this.snapshotsOf(v)) names.push(`${v.record.name}@${s.record.name}`);
    }
    return names.sort();
  }

  async describeExport(name: string): Promise<{ size: number; readOnly: boolean; blockSize: number }> {
    if (name.includes('@')) {
      const s = await this.localSnapshot(name);
      return { size: s.record.size, readOnly: true, blockSize: 4096 };
    }
    const v = await this.localVolume(name);
    return { size: v.record.size, readOnly: false, blockSize: 4096 };
  }

  async openForRestore(idOrName: string): Promise<BlockDevice> {
    const v = await this.localVolume(idOrName);
    if (v.record.status !== 'restoring') throw precondition(`volume ${v.record.name} is not being restored`);
    return this.openWriter(v, 'restore');
  }

  completeRestore(idOrName: string): Promise<VolumeInfo> {
    return this.meta.run(async () => {
      const v = await this.localVolume(idOrName);
      if (v.record.status !== 'restoring') throw precondition(`volume ${v.record.name} is not being restored`);
      await v.layer.flush();
      const record: VolumeRecord = { ...v.record, status: 'up' };
      await this.store.commit([put.volume(record)]);
      v.record = record;
      return this.volumeInfo(v);
    });
  }

  async openExport(name: string, options: OpenExportOptions = {}): Promise<BlockDevice> {
    if (name.includes('@')) {
      const found = await this.localSnapshot(name);
      const encryption = this.volumes.get(found.record.volume_id)?.record.encryption;
      const cipher = await this.cipherFor(name, encryption);
      // Looked up again: the snapshot may have gone while the key was being unwrapped.
      const s = this.findSnapshot(name);
      const owner = this.volumes.get(s.record.volume_id);
      if (owner === undefined || s !== found) {
        cipher?.release();
        throw notFound(`snapshot ${name} has no volume`);
      }
      s.readers++;
      const source: ViewSource = { top: () => s.layer, gate: owner.gate, locks: owner.locks, tracker: this.tracker };
      const coordinator = new VolumeCoordinator([new LocalReplica(this.nodeId, name, source, cipher)]);
      return new VolumeDevice(name, s.record.size, true, coordinator, () => {
        s.readers--;
        void coordinator.close();
      });
    }
    const v = await this.localVolume(name);
    if (v.record.status !== 'up') {
      throw precondition(
        `volume ${v.record.name} is ${v.record.status}: its restore has not completed, so it cannot be attached`,
      );
    }
    return this.openWriter(v, options.holder ?? 'a local opener');
  }

  private async openWriter(v: VolumeState, holder: string): Promise<BlockDevice> {
    const cipher = await this.cipherFor(v.record.name, v.record.encryption);
    try {
      // A writer that is disconnecting (flushing) is waited for, so a client can reconnect at once.
      const leaving = [...v.devices.keys()].map((d) => d.closing).filter((p) => p !== undefined);
      if (leaving.length > 0 && leaving.length === v.devices.size) await Promise.allSettled(leaving);
      if (this.volumes.get(v.record.id) !== v) throw notFound(`volume ${v.record.name} was deleted`);
      if (v.writers > 0 && !v.record.shared) {
        const by = [...v.devices.values()].map((h) => `${h.client} since ${h.since}`).join(', ') || 'another writer';
        throw precondition(
          `volume ${v.record.name} is already attached by ${by}; disconnect it first (or create the volume with --shared)`,
        );
      }
    } catch (err: unknown) {
      cipher?.release();
      throw err;
    }
    // One coordinator per open volume: the first open makes it with its key; a shared volume's later opens have
    // proved they can unwrap the key and use the coordinator's. It is closed (its key dropped) with the last device.
    let coordinator = v.coordinator;
    if (coordinator === undefined) {
      coordinator = new VolumeCoordinator([this.localReplica(v, cipher)]);
      v.coordinator = coordinator;
    } else {
      cipher?.release();
    }
    v.writers++;
    const onClose = (): void => {
      v.writers--;
      v.devices.delete(device);
      if (v.devices.size === 0 && v.coordinator === coordinator) {
        v.coordinator = undefined;
        void coordinator.close();
      }
    };
    const device: VolumeDevice = new VolumeDevice(v.record.name, v.record.size, false, coordinator, onClose);
    v.devices.set(device, { client: holder, since: new Date().toISOString() });
    return device;
  }

  async close(): Promise<void> {
    await this.haUpdater?.close();
    await this.collecting;
    await this.guard.settled();
    await this.meta.run(async () => {
      await this.layers.closeAll();
      if (this.ownsStore) await this.store.close();
    });
  }
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
