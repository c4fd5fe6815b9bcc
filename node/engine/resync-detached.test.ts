import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { DirectConnector } from '../../test/support/direct-connector.js';
import { enginesOnEtcd, until } from '../../test/support/engines-on-etcd.js';
import { NODES_PREFIX } from '../cluster/membership.js';
import { catalogKeys, put } from './catalog.js';
import type { PlacementPort } from './cluster-ports.js';
import { REPLICATION_SETTINGS_KEY } from './constants.js';
import { firstDifference } from './device-replica.testing.js';
import type { ReplicaRecord, VolumeRecord } from './records.js';
import type { BlockDevice } from './types.js';

const MiB = 1024 * 1024;
const NODES = ['node-a', 'node-b', 'node-c'];

const placement: PlacementPort = {
  async place(request) {
    return (request.nodes ?? NODES.filter((n) => !request.exclude?.includes(n))).slice(0, request.ha_level);
  },
};

describe('resync of a volume attached nowhere (R19: three engines on a real etcd)', () => {
  const cluster = enginesOnEtcd({
    nodes: NODES,
    placement,
    connector: () => new DirectConnector(),
    prefix: 'ferry-resync-detached-',
  });
  const engine = (n: string) => cluster.engine(n);
  const record = (id: string): Promise<VolumeRecord> => cluster.record(id);
  const entry = (id: string, node: string): Promise<ReplicaRecord | undefined> => cluster.entry(id, node);
  /** Node `n` announces itself (its membership record), as a node that starts or comes back does. */
  const online = (n: string): Promise<number> => cluster.store.put(`${NODES_PREFIX}${n}`, { hostname: n });

  /**
   * Volume `v` on A and B, written through A; B then goes down and is recorded out of sync, more is written through
   * A alone, and the volume is detached: attached nowhere, B out of sync and unreachable.
   */
  async function degradedAndDetached(changedMiB: number): Promise<string> {
    const { volume } = await engine('node-a').createVolume({
      name: 'v',
      size: 64 * MiB,
      ha_level: 2,
      replica_nodes: ['node-a', 'node-b'],
    });
    let dev: BlockDevice = await engine('node-a').openExport('v');
    for (let i = 0; i < 4; i++) await dev.write(i * 5 * MiB, randomBytes(MiB));
    await dev.close();
    cluster.connector.setDown('node-b', true);
    // What a coordinator that lost B commits (R7); the next attach then leaves B out (it cannot open it).
    const e = await cluster.store.getEntry<VolumeRecord>(catalogKeys.volume(volume.id));
    const out = (x: ReplicaRecord): ReplicaRecord =>
      x.node_id === 'node-b'
        ? {
            node_id: 'node-b',
            state: 'out-of-sync',
            since: new Date().toISOString(),
            reason: 'test',
            resync: { kind: 'fill', cursor: 0, copied_bytes: 0, total_bytes: 0, started: '' },
          }
        : x;
    const marked = { ...(e?.value as VolumeRecord), replicas: e?.value.replicas?.map(out) };
    const done = await cluster.store.txn(
      [{ key: catalogKeys.volume(volume.id), modRevision: e?.modRevision ?? 0 }],
      [put.volume(marked)],
    );
    expect(done.succeeded).toBe(true);
    dev = await engine('node-a').openExport('v');
    for (let i = 0; i < changedMiB; i++) await dev.write(((i * 3) % 60) * MiB + 4096, randomBytes(MiB));
    await dev.close();
    return volume.id;
  }

  /**
   * A degraded, detached volume (12 MiB changed while B was down) whose resync runs under a 2 MiB/s cap: B is back,
   * and A has attached it for the resync, which is still copying when the test goes on.
   */
  async function resyncingSlowly(): Promise<string> {
    const id = await degradedAndDetached(12);
    await cluster.store.put(REPLICATION_SETTINGS_KEY, { replica_timeout_seconds: 7200, resync_bandwidth: 2 * MiB });
    cluster.connector.setDown('node-b', false);
    await online('node-b');
    await until(async () => (await record(id)).attached?.for === 'resync');
    return id;
  }

  /** A's and B's replicas of `id` read alike. */
  async function replicasAgree(id: string): Promise<void> {
    const r = await record(id);
    const a = await cluster.connector.open('node-a', { volumeId: id, epoch: r.epoch ?? 0 });
    const b = await cluster.connector.open('node-b', { volumeId: id, epoch: r.epoch ?? 0 });
    try {
      expect(await firstDifference(a, b, r.size)).toBeUndefined();
    } finally {
      await a.close();
      await b.close();
    }
  }

  it('brings the replica back once its node is online, with nobody attached, then lets the volume go', async () => {
    const id = await degradedAndDetached(4);
    expect((await record(id)).attached).toBeUndefined();
    // B is not online: nothing to do, nothing attached.
    await new Promise((r) => setTimeout(r, 300));
    expect((await record(id)).attached).toBeUndefined();
    expect((await entry(id, 'node-b'))?.state).toBe('out-of-sync');

    cluster.connector.setDown('node-b', false);
    await online('node-b');
    await until(async () => {
      const r = await record(id);
      return r.attached === undefined && r.replicas?.every((x) => x.state === 'in-sync') === true;
    });
    await replicasAgree(id);
    const info = await engine('node-c').inspectVolume('v');
    expect(info.attached).toBe(false);
    expect(info.attached_node).toBeUndefined();
    expect(info.replicas?.map((x) => x.state)).toEqual(['in-sync', 'in-sync']);
  });

  it('gives the volume up to an attach on another node mid-copy; that node finishes the resync', async () => {
    const id = await resyncingSlowly();
    const during = await engine('node-c').inspectVolume('v');
    expect(during.attached).toBe(false);
    expect(during.attached_node).toBe('node-a');
    expect(during.attached_for).toBe('resync');
    await until(async () => (await entry(id, 'node-b'))?.state === 'filling');

    const dev = await engine('node-c').openExport('v');
    try {
      expect((await record(id)).attached).toMatchObject({ node_id: 'node-c' });
      expect((await record(id)).attached?.for).toBeUndefined();
      await dev.write(7 * MiB, randomBytes(MiB));
      await cluster.store.put(REPLICATION_SETTINGS_KEY, { replica_timeout_seconds: 7200 });
      await until(async () => (await entry(id, 'node-b'))?.state === 'in-sync');
      await dev.write(9 * MiB, randomBytes(MiB));
      await dev.flush();
      await replicasAgree(id);
    } finally {
      await dev.close();
    }
    // Nothing left to do: nobody attaches it again.
    expect((await record(id)).attached).toBeUndefined();
  });

  it('an attach waits for another node whose hold is no client attach (a brief operation), instead of refusing', async () => {
    const { volume } = await engine('node-a').createVolume({ name: 'v', size: MiB, ha_level: 2 });
    // Node C holds the lock as a snapshot of the detached volume would: no `attached` in the record.
    const lockKey = `/ferry/locks/attach-${volume.id}`;
    await cluster.store.put(lockKey, { holder: 'node-c', since: new Date().toISOString() });
    let opened = false;
    const opening = engine('node-b')
      .openExport('v')
      .then((dev) => {
        opened = true;
        return dev;
      });
    await new Promise((r) => setTimeout(r, 300));
    expect(opened).toBe(false);
    await cluster.store.delete(lockKey);
    const dev = await opening;
    expect((await record(volume.id)).attached).toMatchObject({ node_id: 'node-b' });
    await dev.close();
  });

  it('gives the volume up to an attach on its own node, and to a delete from another node', async () => {
    const id = await resyncingSlowly();

    const dev = await engine('node-a').openExport('v');
    expect((await record(id)).attached?.for).toBeUndefined();
    await dev.close();
    await until(async () => (await record(id)).attached?.for === 'resync');

    await engine('node-c').deleteVolume('v');
    expect(await cluster.store.get(catalogKeys.volume(id))).toBeUndefined();
  });
});
