/**
 * A replica failing while its volume is attached (docs/REPLICATION.md, R7, R8, R9, S2): engines of one process on one
 * cluster store, reaching each other's real LocalReplicas through a direct connector whose replicas can be made to
 * fail, and a store wrapper whose transactions can be held or made to fail. Written against a store factory so the
 * same cases run on every backend (out-of-sync.test.ts, out-of-sync-etcd.test.ts).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type {
  ClusterStore,
  Compare,
  Entry,
  KeyValue,
  LeaseId,
  ListOptions,
  ListPage,
  StoreOp,
  TxnResult,
  Watch,
  WatchOptions,
} from '../cluster/types.js';
import type { PlacementPort, ReplicaConnector, ReplicaHost, ReplicaTarget } from './cluster-ports.js';
import { RESYNC_SNAPSHOT_LABEL } from './constants.js';
import { openEngine } from './engine.js';
import type { SnapshotRecord, VolumeRecord } from './records.js';
import type { RecentWrites, Replica, ReplicaDiffRequest, ReplicaSnapshot } from './replica.js';
import type { BlockDevice, ChangedBlocksPage, Extent, StatusExtent, VolumeEngine, WriteOptions } from './types.js';

const MiB = 1024 * 1024;

/** A replica's state, with `filling` read as `out-of-sync`: the resync manager may already be bringing it back. */
const leftOrBack = (r: { state?: string }): string | undefined => (r.state === 'filling' ? 'out-of-sync' : r.state);
const BLOCK = 4096;
const NODES = ['node-a', 'node-b', 'node-c'] as const;

type Fault = 'write' | 'flush' | 'snapshot';

/** Faults armed per node: its replicas (opened through the connector) fail those calls. */
const faults = new Map<string, Set<Fault>>();

function check(nodeId: string, fault: Fault): void {
  if (faults.get(nodeId)?.has(fault) === true) throw new Error(`${fault} on ${nodeId}: input/output error`);
}

/** A remote replica whose calls fail while a fault is armed for its node (a disk error, a broken link). */
class FlakyReplica implements Replica {
  constructor(private readonly inner: Replica) {}
  get nodeId(): string {
    return this.inner.nodeId;
  }
  read(offset: number, length: number, into?: Buffer): Promise<Buffer> {
    return this.inner.read(offset, length, into);
  }
  async write(offset: number, data: Buffer, options?: WriteOptions): Promise<void> {
    check(this.nodeId, 'write');
    return this.inner.write(offset, data, options);
  }
  async writeZeroes(offset: number, length: number, options?: WriteOptions): Promise<void> {
    check(this.nodeId, 'write');
    return this.inner.writeZeroes(offset, length, options);
  }
  async trim(offset: number, length: number, options?: WriteOptions): Promise<void> {
    check(this.nodeId, 'write');
    return this.inner.trim(offset, length, options);
  }
  async flush(): Promise<void> {
    check(this.nodeId, 'flush');
    return this.inner.flush();
  }
  blockStatus(offset: number, length: number): Promise<StatusExtent[]> {
    return this.inner.blockStatus(offset, length);
  }
  async snapshot(snapshotId: string, headId?: string): Promise<ReplicaSnapshot> {
    check(this.nodeId, 'snapshot');
    return this.inner.snapshot(snapshotId, headId);
  }
  changedBlocks(request: ReplicaDiffRequest): Promise<ChangedBlocksPage> {
    return this.inner.changedBlocks(request);
  }
  recentWrites(): Promise<RecentWrites> {
    return this.inner.recentWrites();
  }
  generation(): number {
    return this.inner.generation();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/** A connector that reaches engines of this process (test/support/direct-connector.ts), passed in by the test. */
export interface TestConnector extends ReplicaConnector {
  add(nodeId: string, host: ReplicaHost): void;
}

class FlakyConnector implements ReplicaConnector {
  constructor(readonly direct: TestConnector) {}
  async open(nodeId: string, target: ReplicaTarget): Promise<Replica> {
    return new FlakyReplica(await this.direct.open(nodeId, target));
  }
  drop(nodeId: string, volumeId: string): Promise<void> {
    return this.direct.drop(nodeId, volumeId);
  }
}

/** A store whose transactions can be held (until released) or failed (the store unreachable). */
class GatedStore implements ClusterStore {
  hold: Promise<void> | undefined;
  /** Called when a held transaction arrives (before it waits). */
  onHeld: (() => void) | undefined;
  unreachable = false;
  /** The keys each committed transaction wrote, in order. */
  readonly written: string[][] = [];
  constructor(private readonly inner: ClusterStore) {}
  async txn(compares: readonly Compare[], ops: readonly StoreOp[]): Promise<TxnResult> {
    if (this.unreachable) throw new Error('etcd unreachable');
    if (this.hold !== undefined) {
      this.onHeld?.();
      await this.hold;
    }
    const done = await this.inner.txn(compares, ops);
    if (done.succeeded) this.written.push(ops.map((o) => o.key));
    return done;
  }
  get<T>(key: string): Promise<T | undefined> {
    return this.inner.get<T>(key);
  }
  list<T>(prefix: string): Promise<KeyValue<T>[]> {
    return this.inner.list<T>(prefix);
  }
  commit(ops: readonly StoreOp[]): Promise<void> {
    return this.inner.commit(ops);
  }
  compareAndSet(key: string, expected: unknown, value: unknown): Promise<boolean> {
    return this.inner.compareAndSet(key, expected, value);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
  getEntry<T>(key: string): Promise<Entry<T> | undefined> {
    return this.inner.getEntry<T>(key);
  }
  revision(): Promise<number> {
    return this.inner.revision();
  }
  put(key: string, value: unknown, options?: { lease?: LeaseId }): Promise<number> {
    return this.inner.put(key, value, options);
  }
  delete(key: string): Promise<boolean> {
    return this.inner.delete(key);
  }
  listPage<T>(prefix: string, options?: ListOptions): Promise<ListPage<T>> {
    return this.inner.listPage<T>(prefix, options);
  }
  watch<T>(prefix: string, options?: WatchOptions): Promise<Watch<T>> {
    return this.inner.watch<T>(prefix, options);
  }
  grantLease(ttlSeconds: number): Promise<LeaseId> {
    return this.inner.grantLease(ttlSeconds);
  }
  keepAlive(lease: LeaseId): Promise<void> {
    return this.inner.keepAlive(lease);
  }
  revokeLease(lease: LeaseId): Promise<void> {
    return this.inner.revokeLease(lease);
  }
}

export type StoreFactory = (dir: string) => Promise<ClusterStore>;

const firstNodes: PlacementPort = {
  async place(request) {
    const chosen = [...(request.nodes ?? [])];
    for (const n of NODES) if (chosen.length < request.ha_level && !chosen.includes(n)) chosen.push(n);
    return chosen;
  },
};

const turn = () => new Promise((resolve) => setImmediate(resolve));

function block(seed: number): Buffer {
  return Buffer.alloc(BLOCK, seed);
}

export function outOfSyncCases(backend: string, openStore: StoreFactory, newConnector: () => TestConnector): void {
  describe(`a replica failing while its volume is attached (R7, S2; ${backend})`, () => {
    let base: string;
    let store: GatedStore;
    let connector: FlakyConnector;
    const engines = new Map<string, VolumeEngine>();
    const engine = (n: string): VolumeEngine => engines.get(n) as VolumeEngine;
    const record = async (id: string) => (await store.get<VolumeRecord>(`/ferry/volumes/${id}`)) as VolumeRecord;
    const hidden = async (volumeId: string): Promise<SnapshotRecord[]> =>
      (await store.list<SnapshotRecord>('/ferry/snapshots/'))
        .map((kv) => kv.value)
        .filter((s) => s.volume_id === volumeId && s.labels[RESYNC_SNAPSHOT_LABEL] !== undefined);

    async function changed(vol: string, baseId: string): Promise<Extent[]> {
      const out: Extent[] = [];
      let offset: number | undefined = 0;
      while (offset !== undefined) {
        const page = await engine('node-a').changedBlocks(vol, { base_snapshot_id: baseId, offset, limit: 100 });
        out.push(...page.extents);
        offset = page.next_offset;
      }
      return out;
    }

    beforeEach(async () => {
      base = await mkdtemp(join(tmpdir(), 'ferry-out-of-sync-'));
      store = new GatedStore(await openStore(base));
      connector = new FlakyConnector(newConnector());
      faults.clear();
      for (const n of NODES) {
        const e = await openEngine({
          dataDir: join(base, n),
          store,
          nodeId: n,
          replicas: connector,
          placement: firstNodes,
        });
        engines.set(n, e);
        connector.direct.add(n, e.replicaHost);
      }
    });

    afterEach(async () => {
      faults.clear();
      store.hold = undefined;
      store.unreachable = false;
      for (const e of engines.values()) await e.close();
      engines.clear();
      await store.close();
      await rm(base, { recursive: true, force: true });
    });

    it('records the failed replica out-of-sync before acknowledging, and the base snapshot diffs exactly the later writes', async () => {
      const { volume } = await engine('node-a').createVolume({ name: 'v', size: 4 * MiB, ha_level: 2 });
      const dev = await engine('node-a').openExport('v');
      await dev.write(0, block(1));
      await dev.flush();
      await dev.write(BLOCK, block(2));
      faults.set('node-b', new Set(['write', 'flush']));
      // The transaction is held: the write that B failed is not acknowledged until it commits.
      let release!: () => void;
      store.hold = new Promise<void>((resolve) => {
        release = resolve;
      });
      let held = false;
      store.onHeld = () => {
        held = true;
      };
      let acked = false;
      const failing = dev.write(8 * BLOCK, block(3)).then(() => {
        acked = true;
      });
      while (!held) await turn();
      for (let i = 0; i < 5; i++) await turn();
      expect(acked).toBe(false);
      expect((await record(volume.id)).replicas?.[1]?.state).toBe('in-sync');
      store.hold = undefined;
      release();
      await failing;
      const after = await record(volume.id);
      const b = after.replicas?.[1];
      expect(b).toMatchObject({ node_id: 'node-b', state: 'out-of-sync', resync: { kind: 'dirty', cursor: 0 } });
      expect(b?.reason).toMatch(/write on node-b: input\/output error/);
      expect(typeof b?.since).toBe('string');
      // B may lack the unflushed write and the failed one (not the flushed one).
      expect(b?.resync?.extra).toEqual([
        [BLOCK, BLOCK],
        [8 * BLOCK, BLOCK],
      ]);
      const [snap] = await hidden(volume.id);
      expect(snap).toMatchObject({ holders: ['node-a'], labels: { [RESYNC_SNAPSHOT_LABEL]: 'node-b' } });
      expect(b?.resync?.base_snapshot_id).toBe(snap?.id);
      // The base is a frozen layer on the survivor.
      const frozen = await store.get<{ frozen: boolean }>(`/ferry/local/node-a/layers/${snap?.layer}`);
      expect(frozen?.frozen).toBe(true);
      expect(after.top).not.toBe(volume.id);

      // The writer goes on, degraded; what B lacks is exactly what was written since.
      await dev.write(20 * BLOCK, block(4));
      await dev.writeZeroes(30 * BLOCK, 2 * BLOCK);
      await dev.flush();
      expect((await dev.read(8 * BLOCK, BLOCK)).equals(block(3))).toBe(true);
      expect(await changed('v', snap?.id as string)).toEqual([
        { offset: 20 * BLOCK, length: BLOCK },
        { offset: 30 * BLOCK, length: 2 * BLOCK },
      ]);

      // Inspect: degraded, B out-of-sync since when and why; the hidden snapshot is neither listed nor counted.
      const info = await engine('node-c').inspectVolume('v');
      expect(info.health).toBe('degraded');
      expect(info.snapshot_count).toBe(0);
      expect(info.replicas?.[1]).toMatchObject({ node_id: 'node-b', state: 'out-of-sync', since: b?.since });
      expect(info.replicas?.[1]?.reason).toMatch(/input\/output error/);
      expect(await engine('node-a').listSnapshots('v')).toEqual([]);
      expect(await engine('node-a').listExports()).toEqual(['v']);
      // A user snapshot still works.
      await engine('node-a').createSnapshot('v', { name: 's1' });
      expect((await engine('node-a').listSnapshots('v')).map((s) => s.name)).toEqual(['s1']);
      await dev.close();

      // B starts again: it keeps its own replica (the base's layer, its head when it left), not an empty new top.
      await engine('node-b').close();
      const again = await openEngine({
        dataDir: join(base, 'node-b'),
        store,
        nodeId: 'node-b',
        replicas: connector,
        placement: firstNodes,
      });
      engines.set('node-b', again);
      connector.direct.add('node-b', again.replicaHost);
      const layersOfB = (await store.list('/ferry/local/node-b/layers/')).map((kv) => kv.key.split('/').pop());
      expect(layersOfB).toContain(snap?.layer);
      expect(layersOfB).not.toContain((await record(volume.id)).top);
      const onB = await again.replicaHost.open({ volumeId: volume.id, epoch: (await record(volume.id)).epoch ?? 0 });
      expect((await onB.read(0, BLOCK)).equals(block(1))).toBe(true);
      expect((await onB.read(20 * BLOCK, BLOCK)).equals(Buffer.alloc(BLOCK))).toBe(true);
      await onB.close();

      // Deleting the hidden base (as the resync does when it completes) works through the engine.
      await engine('node-a').deleteSnapshot(snap?.id as string);
      expect(await hidden(volume.id)).toEqual([]);
    });

    it('records two replicas failing at once in one transaction, on one base', async () => {
      const { volume } = await engine('node-a').createVolume({ name: 'v', size: 4 * MiB, ha_level: 3 });
      const dev = await engine('node-a').openExport('v');
      await dev.write(0, block(1));
      const from = store.written.length;
      faults.set('node-b', new Set(['write', 'flush']));
      faults.set('node-c', new Set(['write', 'flush']));
      await dev.write(BLOCK, block(2));
      const entry = await store.getEntry<VolumeRecord>(`/ferry/volumes/${volume.id}`);
      expect(entry?.value.replicas?.map((r) => r.state)).toEqual(['in-sync', 'out-of-sync', 'out-of-sync']);
      const bases = new Set(entry?.value.replicas?.slice(1).map((r) => r.resync?.base_snapshot_id));
      expect(bases.size).toBe(1);
      const snaps = await hidden(volume.id);
      expect(snaps.map((s) => s.labels[RESYNC_SNAPSHOT_LABEL])).toEqual(['node-b,node-c']);
      expect(bases.has(snaps[0]?.id)).toBe(true);
      // One transaction wrote the record since the failure (with the snapshot record).
      const wrote = store.written.slice(from).filter((keys) => keys.includes(`/ferry/volumes/${volume.id}`));
      expect(wrote).toHaveLength(1);
      expect(wrote[0]).toContain(`/ferry/snapshots/${snaps[0]?.id}`);
      expect((await engine('node-a').inspectVolume('v')).health).toBe('degraded');
      await dev.close();
    });

    it('fails the I/O when the transaction cannot be committed, leaving the record in-sync', async () => {
      const { volume } = await engine('node-a').createVolume({ name: 'v', size: 4 * MiB, ha_level: 2 });
      const dev = await engine('node-a').openExport('v');
      await dev.write(0, block(1));
      faults.set('node-b', new Set(['write']));
      store.unreachable = true;
      await expect(dev.write(BLOCK, block(2))).rejects.toMatchObject({ code: 'UNAVAILABLE' });
      await expect(dev.flush()).rejects.toThrow(/node-b failed and could not be recorded/);
      expect((await record(volume.id)).replicas?.map((r) => r.state)).toEqual(['in-sync', 'in-sync']);
      expect(await hidden(volume.id)).toEqual([]);
      store.unreachable = false;
      // Once the store answers, a later change records B and goes on.
      for (;;) {
        const done = await dev.write(2 * BLOCK, block(3)).then(
          () => true,
          () => false,
        );
        if (done) break;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      expect((await record(volume.id)).replicas?.map(leftOrBack)).toEqual(['in-sync', 'out-of-sync']);
      await dev.close();
    });

    it('fails I/O loudly when the last in-sync replica fails', async () => {
      const { volume } = await engine('node-a').createVolume({
        name: 'v',
        size: 4 * MiB,
        replica_nodes: ['node-a', 'node-b'],
      });
      // Attached on C, which holds no replica: both replicas are remote.
      const dev: BlockDevice = await engine('node-c').openExport('v');
      await dev.write(0, block(1));
      faults.set('node-b', new Set(['write', 'flush']));
      await dev.write(BLOCK, block(2));
      faults.set('node-a', new Set(['write', 'flush']));
      await expect(dev.write(2 * BLOCK, block(3))).rejects.toThrow(/no in-sync replica.*node node-b.*node-a/);
      await expect(dev.flush()).rejects.toMatchObject({ code: 'UNAVAILABLE' });
      expect((await record(volume.id)).replicas?.map((r) => r.state)).toEqual(['in-sync', 'out-of-sync']);
      // What was acknowledged reads back from A; once A answers again, writes go on.
      expect((await dev.read(BLOCK, BLOCK)).equals(block(2))).toBe(true);
      faults.delete('node-a');
      await dev.write(2 * BLOCK, block(4));
      await dev.close();
    });

    it('takes a user snapshot on the replicas that stage it and records the one that failed out-of-sync (S2)', async () => {
      const { volume } = await engine('node-a').createVolume({ name: 'v', size: 4 * MiB, ha_level: 3 });
      const dev = await engine('node-a').openExport('v');
      await dev.write(0, block(1));
      // Its writes fail too, so that the resync manager cannot bring it back before the checks below.
      faults.set('node-c', new Set(['snapshot', 'write']));
      const snap = await engine('node-a').createSnapshot('v', { name: 's1' });
      const user = await store.get<SnapshotRecord>(`/ferry/snapshots/${snap.id}`);
      expect(user?.holders).toEqual(['node-a', 'node-b']);
      await dev.write(BLOCK, block(2));
      const after = await record(volume.id);
      expect(after.replicas?.map(leftOrBack)).toEqual(['in-sync', 'in-sync', 'out-of-sync']);
      const [base] = await hidden(volume.id);
      expect(base?.holders).toEqual(['node-a', 'node-b']);
      expect(after.replicas?.[2]?.resync?.base_snapshot_id).toBe(base?.id);
      expect(await changed('v', base?.id as string)).toEqual([{ offset: BLOCK, length: BLOCK }]);
      expect((await engine('node-b').inspectVolume('v')).health).toBe('degraded');
      await dev.close();
    });

    it('records a replica that fails to stage a snapshot of a detached volume before the tenure ends', async () => {
      const { volume } = await engine('node-a').createVolume({ name: 'v', size: 4 * MiB, ha_level: 2 });
      faults.set('node-b', new Set(['snapshot']));
      await engine('node-a').createSnapshot('v', { name: 's1' });
      const after = await record(volume.id);
      expect(after.replicas?.map((r) => r.state)).toEqual(['in-sync', 'out-of-sync']);
      expect(after.attached).toBeUndefined();
      expect(await hidden(volume.id)).toHaveLength(1);
    });
  });
}
