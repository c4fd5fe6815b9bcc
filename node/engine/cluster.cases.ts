/**
 * Three engines in one process sharing one cluster store, each reaching the others' replicas through a direct
 * connector (test/support/direct-connector.ts: node id -> that engine's replicaHost, real LocalReplicas). Written
 * against a store factory so the same cases run on every backend (cluster.test.ts, cluster-etcd.test.ts).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FerryError } from '../../common/index.js';
import type { ClusterStore } from '../cluster/types.js';
import { type PlacementPort, type ReplicaConnector, type ReplicaHost, RunsElsewhere } from './cluster-ports.js';
import { openEngine } from './engine.js';
import type { SnapshotRecord, VolumeRecord } from './records.js';
import type { Extent, VolumeEngine } from './types.js';

const MiB = 1024 * 1024;
const NODES = ['node-a', 'node-b', 'node-c'] as const;

export type StoreFactory = (dir: string) => Promise<ClusterStore>;

/** A connector that reaches engines of this process (test/support/direct-connector.ts), passed in by the test. */
export interface TestConnector extends ReplicaConnector {
  add(nodeId: string, host: ReplicaHost): void;
  setDown(nodeId: string, down: boolean): void;
}

/** Placement for the tests: the nodes asked for, else the first `ha_level` nodes of the cluster. */
const firstNodes: PlacementPort = {
  async place(request) {
    const chosen = [...(request.nodes ?? [])];
    for (const n of NODES) if (chosen.length < request.ha_level && !chosen.includes(n)) chosen.push(n);
    return chosen;
  },
};

function pattern(seed: number, length: number): Buffer {
  const b = Buffer.alloc(length);
  for (let i = 0; i < length; i++) b[i] = (seed * 31 + i * 7) & 0xff;
  return b;
}

async function allChanged(engine: VolumeEngine, vol: string, base?: string, target?: string): Promise<Extent[]> {
  const out: Extent[] = [];
  let offset: number | undefined = 0;
  while (offset !== undefined) {
    const page = await engine.changedBlocks(vol, {
      ...(base !== undefined && { base_snapshot_id: base }),
      ...(target !== undefined && { target_snapshot_id: target }),
      offset,
      limit: 3,
    });
    out.push(...page.extents);
    offset = page.next_offset;
  }
  return out;
}

export function clusterCases(backend: string, openStore: StoreFactory, newConnector: () => TestConnector): void {
  describe(`three engines on one cluster store (${backend})`, () => {
    let base: string;
    let store: ClusterStore;
    let connector: TestConnector;
    const engines = new Map<string, VolumeEngine>();
    const engine = (n: string): VolumeEngine => engines.get(n) as VolumeEngine;

    const start = async (n: string, placement: PlacementPort | null = firstNodes): Promise<VolumeEngine> => {
      const e = await openEngine({
        dataDir: join(base, n),
        store,
        nodeId: n,
        replicas: connector,
        ...(placement !== null && { placement }),
      });
      engines.set(n, e);
      connector.add(n, e.replicaHost);
      return e;
    };

    const layerKeys = async (node: string): Promise<string[]> =>
      (await store.list(`/ferry/local/${node}/layers/`)).map((kv) => kv.key.slice(kv.key.lastIndexOf('/') + 1));

    const record = async (id: string): Promise<VolumeRecord | undefined> => store.get(`/ferry/volumes/${id}`);

    beforeEach(async () => {
      base = await mkdtemp(join(tmpdir(), 'ferry-cluster-'));
      store = await openStore(base);
      connector = newConnector();
      for (const n of NODES) await start(n);
    });

    afterEach(async () => {
      for (const e of engines.values()) await e.close();
      engines.clear();
      await store.close();
      await rm(base, { recursive: true, force: true });
    });

    it('a repl-2 volume created on A lives on A and B: written through A, B’s replica holds the bytes', async () => {
      const { volume } = await engine('node-a').createVolume({ name: 'v', size: 4 * MiB, ha_level: 2 });
      expect(volume.replicas).toEqual([
        { node_id: 'node-a', state: 'in-sync' },
        { node_id: 'node-b', state: 'in-sync' },
      ]);
      const dev = await engine('node-a').openExport('v');
      expect(await engine('node-c').inspectVolume('v')).toMatchObject({ attached: true, attached_node: 'node-a' });
      await dev.write(8192, pattern(1, 3 * 4096 + 100));
      await dev.close();
      expect((await record(volume.id))?.attached).toBeUndefined();
      // B's own replica (opened as a coordinator would, under the last epoch) reads the bytes.
      const epoch = (await record(volume.id))?.epoch ?? 0;
      const onB = await engine('node-b').replicaHost.open({ volumeId: volume.id, epoch });
      expect(onB.nodeId).toBe('node-b');
      expect((await onB.read(8192, 3 * 4096 + 100)).equals(pattern(1, 3 * 4096 + 100))).toBe(true);
      await onB.close();
      // And attached on B, the volume reads the same.
      const viaB = await engine('node-b').openExport('v');
      expect((await viaB.read(8192, 3 * 4096 + 100)).equals(pattern(1, 3 * 4096 + 100))).toBe(true);
      expect((await viaB.read(0, 8192)).equals(Buffer.alloc(8192))).toBe(true);
      await viaB.close();
      // Both nodes hold one layer of the volume's top id.
      const top = (await record(volume.id))?.top as string;
      expect(await layerKeys('node-a')).toContain(top);
      expect(await layerKeys('node-b')).toContain(top);
      expect(await layerKeys('node-c')).toEqual([]);
    });

    it('a node with no replica attaches and reads and writes through the remote replicas', async () => {
      const { volume } = await engine('node-a').createVolume({
        name: 'v',
        size: 4 * MiB,
        replica_nodes: ['node-a', 'node-b'],
      });
      expect(volume.ha_level).toBe(2);
      const dev = await engine('node-c').openExport('v');
      await dev.write(0, pattern(2, 64 * 1024));
      expect((await dev.read(0, 64 * 1024)).equals(pattern(2, 64 * 1024))).toBe(true);
      const info = await engine('node-a').inspectVolume('v');
      expect([info.attached, info.attached_node]).toEqual([true, 'node-c']);
      await dev.flush();
      await dev.close();
      for (const n of ['node-a', 'node-b']) {
        const r = await engine(n).replicaHost.open({
          volumeId: volume.id,
          epoch: (await record(volume.id))?.epoch ?? 0,
        });
        expect((await r.read(0, 64 * 1024)).equals(pattern(2, 64 * 1024))).toBe(true);
        await r.close();
      }
      expect(await layerKeys('node-c')).toEqual([]);
    });

    it('one writer cluster-wide: B is refused with RunsElsewhere naming A, as are its snapshot, resize and delete', async () => {
      await engine('node-a').createVolume({ name: 'v', size: 4 * MiB, ha_level: 2 });
      const dev = await engine('node-a').openExport('v');
      const refused = async (p: Promise<unknown>): Promise<void> => {
        const err = await p.then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(RunsElsewhere);
        expect(err).toMatchObject({
          code: 'FAILED_PRECONDITION',
          nodeId: 'node-a',
          message: 'volume v is attached on node node-a (node-a); detach it there first',
        });
      };
      await refused(engine('node-b').openExport('v'));
      await refused(engine('node-c').openExport('v'));
      await refused(engine('node-b').createSnapshot('v', { name: 's' }));
      await refused(engine('node-b').updateVolume('v', { size: 8 * MiB }));
      await refused(engine('node-c').deleteVolume('v'));
      // On A itself a second writer is refused as before, naming the holder.
      await expect(engine('node-a').openExport('v')).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
      await dev.close();
      const again = await engine('node-b').openExport('v');
      await again.close();
    });

    it('a snapshot of a repl-2 volume: both replicas hold it under one layer id, and diffs agree on every node', async () => {
      const { volume } = await engine('node-a').createVolume({ name: 'v', size: 4 * MiB, ha_level: 2 });
      const dev = await engine('node-a').openExport('v');
      await dev.write(0, pattern(3, 3 * 4096));
      const s1 = await engine('node-a').createSnapshot('v', { name: 's1' });
      await dev.write(64 * 1024, pattern(4, 8192));
      await dev.write(4096, pattern(5, 4096));
      await dev.close();
      // Taken on C (no replica, attached nowhere): a brief tenure over both replicas.
      const s2 = await engine('node-c').createSnapshot('v', { name: 's2' });
      for (const s of [s1, s2]) {
        const rec = (await store.get(`/ferry/snapshots/${s.id}`)) as SnapshotRecord;
        expect(rec.holders).toEqual(['node-a', 'node-b']);
        for (const n of ['node-a', 'node-b']) {
          expect(await store.get(`/ferry/local/${n}/layers/${rec.layer}`)).toMatchObject({
            id: rec.layer,
            frozen: true,
          });
        }
      }
      const top = (await record(volume.id))?.top as string;
      expect(await layerKeys('node-a')).toContain(top);
      expect(await layerKeys('node-b')).toContain(top);
      const expected = [
        { offset: 4096, length: 4096 },
        { offset: 64 * 1024, length: 8192 },
      ];
      for (const n of NODES) {
        expect(await allChanged(engine(n), 'v', s1.id, s2.id)).toEqual(expected);
        expect(await allChanged(engine(n), 'v', undefined, s1.id)).toEqual([{ offset: 0, length: 3 * 4096 }]);
      }
      // The same page from each replica directly.
      for (const n of ['node-a', 'node-b']) {
        const r = await engine(n).replicaHost.open({ volumeId: volume.id, epoch: 0, snapshotId: s2.id });
        const page = await r.changedBlocks({
          base_snapshot_id: s1.id,
          target_snapshot_id: s2.id,
          size: 4 * MiB,
          offset: 0,
          limit: 100,
        });
        expect(page.extents).toEqual(expected);
        await r.close();
      }
      // A snapshot read through a node that does not hold it.
      const view = await engine('node-c').openExport('v@s1');
      expect((await view.read(0, 3 * 4096)).equals(pattern(3, 3 * 4096))).toBe(true);
      await view.close();
    });

    it('a clone is placed on the snapshot’s holders with one top layer id; delete drops the layers on every holder', async () => {
      const { volume } = await engine('node-a').createVolume({
        name: 'v',
        size: 4 * MiB,
        replica_nodes: ['node-b', 'node-c'],
      });
      expect(await layerKeys('node-a')).toEqual([]);
      const dev = await engine('node-a').openExport('v');
      await dev.write(0, pattern(6, 16 * 1024));
      await dev.close();
      const snap = await engine('node-a').createSnapshot('v', { name: 's' });
      const clone = await engine('node-a').cloneVolume({ parent_id: snap.id, name: 'c' });
      expect((clone.replicas ?? []).map((r) => r.node_id)).toEqual(['node-b', 'node-c']);
      const cloneTop = (await record(clone.id))?.top as string;
      expect(await layerKeys('node-b')).toContain(cloneTop);
      expect(await layerKeys('node-c')).toContain(cloneTop);
      const cdev = await engine('node-a').openExport('c');
      expect((await cdev.read(0, 16 * 1024)).equals(pattern(6, 16 * 1024))).toBe(true);
      await cdev.close();

      // Deleting the clone from A drops its layers on B and C.
      await engine('node-a').deleteVolume('c');
      for (const n of NODES) await engine(n).settled?.();
      expect(await layerKeys('node-b')).not.toContain(cloneTop);
      expect(await layerKeys('node-c')).not.toContain(cloneTop);

      // A holder that cannot be reached drops its layers when it next starts (R18).
      const vTop = (await record(volume.id))?.top as string;
      connector.setDown('node-c', true);
      await engine('node-a').deleteVolume('v');
      expect(await record(volume.id)).toBeUndefined();
      for (const n of NODES) await engine(n).settled?.();
      expect(await layerKeys('node-b')).toEqual([]);
      expect(await layerKeys('node-c')).toContain(vTop);
      await engine('node-c').close();
      await start('node-c');
      expect(await layerKeys('node-c')).toEqual([]);
    });

    it('create validates ha_level and nodes, and a placement failure leaves nothing behind', async () => {
      await expect(engine('node-a').createVolume({ name: 'v', size: MiB, ha_level: 4 })).rejects.toMatchObject({
        code: 'INVALID_ARGUMENT',
      });
      await expect(
        engine('node-a').createVolume({ name: 'v', size: MiB, ha_level: 1, replica_nodes: ['node-a', 'node-b'] }),
      ).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', field: 'spec.replica_nodes' });
      const failing: PlacementPort = {
        async place() {
          throw new FerryError('FAILED_PRECONDITION', 'ha_level 3 needs 3 racks; the cluster has 2 (r1, r2)');
        },
      };
      await engine('node-a').close();
      await start('node-a', failing);
      await expect(engine('node-a').createVolume({ name: 'v', size: MiB, ha_level: 3 })).rejects.toThrow(/3 racks/);
      // Without a placement port the node runs alone.
      await engine('node-b').close();
      await start('node-b', null);
      await expect(engine('node-b').createVolume({ name: 'v', size: MiB, ha_level: 2 })).rejects.toMatchObject({
        code: 'FAILED_PRECONDITION',
        message: 'this node runs alone: ha_level 2 needs 2 nodes in a cluster',
      });
      expect(await store.list('/ferry/volumes/')).toEqual([]);
      expect(await store.list('/ferry/volume-names/')).toEqual([]);
      expect(await store.list('/ferry/local/')).toEqual([]);
      expect(await store.list('/ferry/locks/')).toEqual([]);
    });

    it('any node lists, resizes and group-snapshots volumes attached nowhere, whatever it holds', async () => {
      await engine('node-a').createVolume({ name: 'x', size: MiB, ha_level: 2 });
      await engine('node-b').createVolume({ name: 'y', size: MiB, replica_nodes: ['node-b', 'node-c'] });
      const listed = await engine('node-c').listVolumes();
      expect(listed.map((v) => [v.name, v.replicas?.map((r) => `${r.node_id}:${r.state}`), v.held_here])).toEqual([
        ['x', ['node-a:in-sync', 'node-b:in-sync'], false],
        ['y', ['node-b:in-sync', 'node-c:in-sync'], true],
      ]);
      expect((await engine('node-c').updateVolume('x', { size: 2 * MiB })).size).toBe(2 * MiB);
      const snaps = await engine('node-a').createSnapshots?.([
        { volume_id: 'x', name: 'g' },
        { volume_id: 'y', name: 'g' },
      ]);
      expect(snaps?.map((s) => s.volume_name)).toEqual(['x', 'y']);
      const holders = await Promise.all(
        (snaps ?? []).map(async (s) => ((await store.get(`/ferry/snapshots/${s.id}`)) as SnapshotRecord).holders),
      );
      expect(holders).toEqual([
        ['node-a', 'node-b'],
        ['node-b', 'node-c'],
      ]);
      expect(await store.list('/ferry/locks/')).toEqual([]);
    });

    it('after a crash of the attaching node: its stale lock is taken over and start-up clears its attach', async () => {
      const { volume } = await engine('node-a').createVolume({ name: 'v', size: MiB, ha_level: 2 });
      const rec = (await record(volume.id)) as VolumeRecord;
      // What a kill -9 of node a while attached leaves: the record says attached, the lock (until its lease expires).
      await store.put(`/ferry/volumes/${volume.id}`, {
        ...rec,
        epoch: 3,
        attached: { node_id: 'node-a', since: rec.created },
      });
      await store.put(`/ferry/locks/attach-${volume.id}`, { holder: 'node-a', since: rec.created });
      await expect(engine('node-b').openExport('v')).rejects.toBeInstanceOf(RunsElsewhere);
      await engine('node-a').close();
      await start('node-a');
      expect(await engine('node-b').inspectVolume('v')).toMatchObject({ attached: false });
      expect((await engine('node-b').inspectVolume('v')).attached_node).toBeUndefined();
      const dev = await engine('node-a').openExport('v');
      expect((await record(volume.id))?.attached?.node_id).toBe('node-a');
      await dev.close();
      expect(await store.list('/ferry/locks/')).toEqual([]);
    });

    it('a replica refuses an open with an older epoch than one it has seen (fenced)', async () => {
      const { volume } = await engine('node-a').createVolume({ name: 'v', size: MiB, ha_level: 2 });
      const host = engine('node-b').replicaHost;
      const newer = await host.open({ volumeId: volume.id, epoch: 1000 });
      await newer.close();
      await expect(host.open({ volumeId: volume.id, epoch: 999 })).rejects.toMatchObject({
        code: 'FAILED_PRECONDITION',
        message: expect.stringMatching(/^fenced: /),
      });
      // A node that does not hold the volume has nothing to open.
      await expect(engine('node-c').replicaHost.open({ volumeId: volume.id, epoch: 2000 })).rejects.toMatchObject({
        code: 'NOT_FOUND',
      });
      // An attach whose epoch (its lock's revision) is below the one B saw is refused, and leaves no attach behind.
      const dev = await engine('node-c')
        .openExport('v')
        .catch((e: unknown) => e);
      expect(dev).toMatchObject({ code: 'FAILED_PRECONDITION', message: expect.stringMatching(/fenced/) });
      expect((await record(volume.id))?.attached).toBeUndefined();
      expect(await store.list('/ferry/locks/')).toEqual([]);
    });
  });
}
