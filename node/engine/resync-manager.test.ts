import { randomBytes, randomInt } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FerryError } from '../../common/index.js';
import { DirectConnector } from '../../test/support/direct-connector.js';
import { enginesOnEtcd, until } from '../../test/support/engines-on-etcd.js';
import { catalogKeys, put } from './catalog.js';
import type { PlacementPort, ReplicaTarget } from './cluster-ports.js';
import { REPLICATION_SETTINGS_KEY } from './constants.js';
import { firstDifference } from './device-replica.testing.js';
import { openEngine } from './engine.js';
import type { ReplicaRecord, VolumeRecord } from './records.js';
import type { Replica } from './replica.js';
import { ResyncManager } from './resync-manager.js';
import type { BlockDevice, VolumeEngine } from './types.js';

const MiB = 1024 * 1024;
const NODES = ['node-a', 'node-b', 'node-c'];

/** The nodes asked for, else the first free ones. */
const placement: PlacementPort = {
  async place(request) {
    const chosen = [...(request.nodes ?? [])];
    for (const n of NODES) {
      if (chosen.length + (request.exclude?.length ?? 0) < request.ha_level && !chosen.includes(n)) {
        if (!request.exclude?.includes(n)) chosen.push(n);
      }
    }
    return chosen;
  },
};

/** A DirectConnector whose replicas of the nodes in `failWrites` fail every write (a disk that went away). */
class FlakyConnector extends DirectConnector {
  readonly failWrites = new Set<string>();
  /** Bytes each node's replicas took in writes that succeeded (what was sent to it). */
  readonly wrote = new Map<string, number>();

  override async open(nodeId: string, target: ReplicaTarget): Promise<Replica> {
    const replica = await super.open(nodeId, target);
    const failing = this.failWrites;
    const wrote = this.wrote;
    return new Proxy(replica, {
      get(t, p) {
        if (p === 'write' && failing.has(nodeId)) {
          return async () => {
            throw new FerryError('UNAVAILABLE', `the disk failed on node ${nodeId}`);
          };
        }
        if (p === 'write') {
          return async (...args: Parameters<Replica['write']>) => {
            await t.write(...args);
            wrote.set(nodeId, (wrote.get(nodeId) ?? 0) + args[1].length);
          };
        }
        const v = Reflect.get(t, p, t) as unknown;
        return typeof v === 'function' ? v.bind(t) : v;
      },
    });
  }
}

describe('ResyncManager (three engines on a real etcd)', () => {
  const cluster = enginesOnEtcd({
    nodes: NODES,
    placement,
    connector: () => new FlakyConnector(),
    prefix: 'ferry-resync-mgr-',
  });
  const engine = (n: string): VolumeEngine => cluster.engine(n);
  const record = (id: string): Promise<VolumeRecord> => cluster.record(id);
  const entry = (id: string, node: string): Promise<ReplicaRecord | undefined> => cluster.entry(id, node);
  /** Changes the record by hand (what the failing coordinator or a takeover would commit). */
  const edit = async (id: string, fn: (r: VolumeRecord) => VolumeRecord): Promise<void> => {
    const e = await cluster.store.getEntry<VolumeRecord>(catalogKeys.volume(id));
    const done = await cluster.store.txn(
      [{ key: catalogKeys.volume(id), modRevision: e?.modRevision ?? 0 }],
      [put.volume(fn(e?.value as VolumeRecord))],
    );
    expect(done.succeeded).toBe(true);
  };
  const markOut = (node: string, resync: ReplicaRecord['resync'], since = new Date().toISOString()) => {
    return (r: VolumeRecord): VolumeRecord => ({
      ...r,
      replicas: r.replicas?.map((x) =>
        x.node_id === node ? { node_id: node, state: 'out-of-sync' as const, since, reason: 'test', resync } : x,
      ),
    });
  };

  /** Volume `v` on A and B with 8 MiB written through A, B then out of sync (and down), attached again on A. */
  async function degraded(): Promise<{ id: string; dev: BlockDevice }> {
    const { volume } = await engine('node-a').createVolume({
      name: 'v',
      size: 64 * MiB,
      ha_level: 2,
      replica_nodes: ['node-a', 'node-b'],
    });
    let dev = await engine('node-a').openExport('v');
    for (let i = 0; i < 8; i++) await dev.write(i * 7 * MiB, randomBytes(MiB));
    await dev.close();
    cluster.connector.setDown('node-b', true);
    await edit(volume.id, markOut('node-b', { kind: 'fill', cursor: 0, copied_bytes: 0, total_bytes: 0, started: '' }));
    dev = await engine('node-a').openExport('v');
    return { id: volume.id, dev };
  }

  it('brings a replica marked out of sync back in sync under a writer (changes since its base and extra), its stale top restacked', async () => {
    const { id, dev } = await degraded();
    // While B is away: a snapshot on A alone (B's top goes stale), the base of B's resync, then more writes.
    const snap = await engine('node-a').createSnapshot('v', { name: 'base' });
    for (let i = 0; i < 4; i++) await dev.write(i * 11 * MiB + 4096, randomBytes(512 * 1024));
    await dev.flush();
    await edit(
      id,
      markOut('node-b', {
        kind: 'dirty',
        base_snapshot_id: snap.id,
        extra: [[60 * MiB, MiB]],
        cursor: 0,
        copied_bytes: 0,
        total_bytes: 0,
        started: '',
      }),
    );
    // A writer runs all along, onto the ranges being copied too.
    let writing = true;
    let writes = 0;
    const writer = (async () => {
      while (writing || writes < 50) {
        const at = randomInt(0, (64 * MiB - 256 * 1024) / 4096) * 4096 + randomInt(0, 4096);
        await dev.write(at, randomBytes(randomInt(1, 256 * 1024)));
        writes++;
      }
    })();
    cluster.connector.setDown('node-b', false);
    await until(async () => (await entry(id, 'node-b'))?.state === 'in-sync');
    writing = false;
    await writer;
    expect(await entry(id, 'node-b')).toEqual({ node_id: 'node-b', state: 'in-sync' });
    // The base snapshot is gone once B is back.
    await until(async () => (await engine('node-a').listSnapshots('v')).length === 0);
    // Writes keep reaching B, and B reads as A does.
    await dev.write(3 * MiB, randomBytes(MiB));
    await dev.flush();
    const r = await record(id);
    const b = await cluster.connector.open('node-b', { volumeId: id, epoch: r.epoch ?? 0 });
    const a = await cluster.connector.open('node-a', { volumeId: id, epoch: r.epoch ?? 0 });
    try {
      expect(await firstDifference(a, b, r.size)).toBeUndefined();
    } finally {
      await a.close();
      await b.close();
    }
    // B's layers are named as A's again: a snapshot taken now is held by both, and B serves it.
    const after = await engine('node-a').createSnapshot('v', { name: 'after' });
    const view = await cluster.connector.open('node-b', { volumeId: id, epoch: r.epoch ?? 0, snapshotId: after.id });
    await view.close();
    expect((await engine('node-a').inspectVolume('v')).replicas?.map((x) => x.state)).toEqual(['in-sync', 'in-sync']);
    await dev.close();
  });

  it('brings back a replica whose node restarted while away, keeping its data under the new top', async () => {
    const { id, dev } = await degraded();
    const snap = await engine('node-a').createSnapshot('v', { name: 'base' });
    await dev.write(9 * MiB, randomBytes(MiB));
    await dev.flush();
    await edit(
      id,
      markOut('node-b', {
        kind: 'dirty',
        base_snapshot_id: snap.id,
        cursor: 0,
        copied_bytes: 0,
        total_bytes: 0,
        started: '',
      }),
    );
    // B restarts while unreachable: its top is not the record's; the data it holds must not be collected.
    await engine('node-b').close();
    await cluster.open('node-b');
    cluster.connector.setDown('node-b', true);
    cluster.connector.setDown('node-b', false);
    await until(async () => (await entry(id, 'node-b'))?.state === 'in-sync');
    const r = await record(id);
    const a = await cluster.connector.open('node-a', { volumeId: id, epoch: r.epoch ?? 0 });
    const b = await cluster.connector.open('node-b', { volumeId: id, epoch: r.epoch ?? 0 });
    try {
      expect(await firstDifference(a, b, r.size)).toBeUndefined();
    } finally {
      await a.close();
      await b.close();
    }
    await dev.close();
  });

  it('replaces a replica out of sync longer than the timeout (set at run time) and drops the stale one (R18)', async () => {
    const { id, dev } = await degraded();
    const hourAgo = new Date(Date.now() - 3600_000).toISOString();
    await edit(
      id,
      markOut('node-b', { kind: 'fill', cursor: 0, copied_bytes: 0, total_bytes: 0, started: '' }, hourAgo),
    );
    // The default timeout (10 minutes) is long past, but the setting of two hours keeps B; one of a minute, set at
    // run time, replaces it with a new replica on C, filled and in sync.
    expect((await entry(id, 'node-b'))?.state).toBe('out-of-sync');
    await cluster.store.put(REPLICATION_SETTINGS_KEY, { replica_timeout_seconds: 60 });
    await until(async () => (await entry(id, 'node-c'))?.state === 'in-sync');
    expect((await record(id)).replicas?.map((x) => x.node_id)).toEqual(['node-a', 'node-c']);
    const r = await record(id);
    const a = await cluster.connector.open('node-a', { volumeId: id, epoch: r.epoch ?? 0 });
    const c = await cluster.connector.open('node-c', { volumeId: id, epoch: r.epoch ?? 0 });
    try {
      expect(await firstDifference(a, c, r.size)).toBeUndefined();
    } finally {
      await a.close();
      await c.close();
    }
    // B comes back: it is told to drop its layers, and no longer holds the volume.
    expect((await engine('node-b').inspectVolume('v')).held_here).toBe(false);
    const layersOfB = async () => (await cluster.store.list('/ferry/local/node-b/layers/')).length;
    expect(await layersOfB()).toBeGreaterThan(0);
    cluster.connector.setDown('node-b', false);
    await until(async () => (await layersOfB()) === 0);
    await dev.close();
  });

  it('a replaced node that restarts removes the stale replica’s layers itself (R18)', async () => {
    const { id, dev } = await degraded();
    const hourAgo = new Date(Date.now() - 3600_000).toISOString();
    await edit(
      id,
      markOut('node-b', { kind: 'fill', cursor: 0, copied_bytes: 0, total_bytes: 0, started: '' }, hourAgo),
    );
    await cluster.store.put(REPLICATION_SETTINGS_KEY, { replica_timeout_seconds: 60 });
    await until(async () => (await entry(id, 'node-c'))?.state === 'in-sync');
    const layersOfB = async () => (await cluster.store.list('/ferry/local/node-b/layers/')).length;
    expect(await layersOfB()).toBeGreaterThan(0);
    // B never answered the drop; it restarts (still unreachable to A) and finds itself no longer listed.
    await engine('node-b').close();
    const restarted = await openEngine({
      dataDir: join(cluster.base, 'node-b'),
      store: cluster.store,
      nodeId: 'node-b',
      replicas: cluster.connector,
    });
    cluster.engines.set('node-b', restarted);
    expect(await layersOfB()).toBe(0);
    await dev.close();
  });

  it('a replica that fails during its resync goes back out of sync with the cursor at 0, and comes back later', async () => {
    const { id, dev } = await degraded();
    const snap = await engine('node-a').createSnapshot('v', { name: 'base' });
    // All above 16 MiB: the record below says an earlier copy got there, so B has everything below it.
    for (let i = 0; i < 6; i++) await dev.write(16 * MiB + i * 7 * MiB + 8192, randomBytes(MiB));
    await dev.flush();
    // B answers opens but its disk fails every write (the copy's first write fails). Its record says an earlier
    // copy got to 16 MiB: the resync starts there.
    cluster.connector.failWrites.add('node-b');
    await edit(
      id,
      markOut('node-b', {
        kind: 'dirty',
        base_snapshot_id: snap.id,
        cursor: 16 * MiB,
        copied_bytes: MiB,
        total_bytes: 8 * MiB,
        started: '',
      }),
    );
    cluster.connector.setDown('node-b', false);
    await until(async () => (await entry(id, 'node-b'))?.reason?.includes('disk failed') === true);
    expect(await entry(id, 'node-b')).toMatchObject({
      state: 'out-of-sync',
      resync: { kind: 'dirty', base_snapshot_id: snap.id, cursor: 0, copied_bytes: 0 },
    });
    // Writes go on without B meanwhile, below the old cursor too (a resync from it would miss them); then its disk
    // is back, and so is it, all of it copied again.
    await dev.write(5 * MiB, randomBytes(MiB));
    cluster.connector.failWrites.delete('node-b');
    await until(async () => (await entry(id, 'node-b'))?.state === 'in-sync');
    await dev.flush();
    const r = await record(id);
    const a = await cluster.connector.open('node-a', { volumeId: id, epoch: r.epoch ?? 0 });
    const b = await cluster.connector.open('node-b', { volumeId: id, epoch: r.epoch ?? 0 });
    try {
      expect(await firstDifference(a, b, r.size)).toBeUndefined();
    } finally {
      await a.close();
      await b.close();
    }
    await dev.close();
  });

  it('a resync interrupted at half way resumes without losing writes and without starting over (R14a)', async () => {
    const { id, dev } = await degraded();
    const snap = await engine('node-a').createSnapshot('v', { name: 'base' });
    // What B lacks: 32 MiB spread over the volume.
    const changes: [number, number][] = [];
    for (let i = 0; i < 16; i++) changes.push([i * 4 * MiB + 8192, 2 * MiB]);
    for (const [at, length] of changes) await dev.write(at, randomBytes(length));
    // Two flushes: those writes are no longer "recent" (R12), so they are not an extra at the failure below.
    await dev.flush();
    await dev.flush();
    const changed = changes.reduce((sum, [, length]) => sum + length, 0);
    // Slow enough for the progress commit (every 2 s) to land half way.
    await cluster.store.put(REPLICATION_SETTINGS_KEY, { replica_timeout_seconds: 7200, resync_bandwidth: 8 * MiB });
    await edit(
      id,
      markOut('node-b', {
        kind: 'dirty',
        base_snapshot_id: snap.id,
        cursor: 0,
        copied_bytes: 0,
        total_bytes: 0,
        started: '',
      }),
    );
    cluster.connector.wrote.set('node-b', 0);
    cluster.connector.setDown('node-b', false);
    await until(async () => ((await entry(id, 'node-b'))?.resync?.cursor ?? 0) > 0, 1200);
    // B's disk fails mid-copy: it leaves, a low base is frozen for what it had copied.
    cluster.connector.failWrites.add('node-b');
    await until(async () => (await entry(id, 'node-b'))?.resync?.low !== undefined, 1200);
    const failed = (await entry(id, 'node-b'))?.resync;
    expect(failed).toMatchObject({ kind: 'dirty', base_snapshot_id: snap.id, cursor: 0 });
    const below = failed?.low?.below ?? 0;
    expect(below).toBeGreaterThan(0);
    expect(below).toBeLessThan(64 * MiB);
    // Writes go on without B, below its old cursor and above it.
    const later: [number, number][] = [
      [Math.floor(below / 2 / 4096) * 4096, MiB],
      [below - 4096, 8192],
      [63 * MiB, MiB],
    ];
    for (const [at, length] of later) await dev.write(at, randomBytes(length));
    await dev.flush();
    cluster.connector.failWrites.delete('node-b');
    await until(async () => (await entry(id, 'node-b'))?.state === 'in-sync', 1200);
    // Both bases are gone once B is back.
    await until(async () => (await engine('node-a').listSnapshots('v')).length === 0);
    const sent = cluster.connector.wrote.get('node-b') ?? 0;
    const lacked = changed + later.reduce((sum, [, length]) => sum + length, 0);
    expect(sent).toBeGreaterThanOrEqual(changed);
    expect(sent / lacked).toBeLessThanOrEqual(1.2);
    const r = await record(id);
    const a = await cluster.connector.open('node-a', { volumeId: id, epoch: r.epoch ?? 0 });
    const b = await cluster.connector.open('node-b', { volumeId: id, epoch: r.epoch ?? 0 });
    try {
      expect(await firstDifference(a, b, r.size)).toBeUndefined();
    } finally {
      await a.close();
      await b.close();
    }
    await dev.close();
  });

  it('follows the bandwidth and timeout settings at run time (watches)', async () => {
    const manager = new ResyncManager({
      store: cluster.store,
      nodeId: 'node-x',
      attachedVolumes: () => [],
      attached: () => undefined,
      deleteSnapshot: async () => undefined,
      log: () => undefined,
    });
    await manager.start();
    try {
      expect(manager.caps.nodeRate).toBe(0);
      await cluster.store.put(REPLICATION_SETTINGS_KEY, { resync_bandwidth: 50 * MiB, replica_timeout_seconds: 30 });
      await until(() => manager.caps.nodeRate === 50 * MiB);
      expect(manager.current).toEqual({ resync_bandwidth: 50 * MiB, replica_timeout_seconds: 30 });
      await cluster.store.put(REPLICATION_SETTINGS_KEY, {});
      await until(() => manager.caps.nodeRate === 0);
    } finally {
      await manager.close();
    }
  });
});
