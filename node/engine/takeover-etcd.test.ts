/**
 * Takeover (docs/REPLICATION.md, F2, F4, F5) with a real etcd and three engines in one process reaching each other's
 * replicas through a direct connector (real LocalReplicas). A coordinator's death is what it leaves in the store:
 * its attach lock gone (its lease expired) and the record still saying `attached`; its node unreachable where the
 * case says so.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DirectConnector } from '../../test/support/direct-connector.js';
import { type EtcdServer, startEtcd } from '../../test/support/etcd.js';
import { openEtcdStore } from '../cluster/etcd-store.js';
import type { ClusterStore } from '../cluster/types.js';
import type { PlacementPort } from './cluster-ports.js';
import { firstDifference } from './device-replica.testing.js';
import { openEngine } from './engine.js';
import type { VolumeRecord } from './records.js';
import { StaleEpochError } from './replica.js';
import { attachLockKey } from './tenure.js';
import type { VolumeEngine } from './types.js';

const MiB = 1024 * 1024;
const NODES = ['node-a', 'node-b', 'node-c'] as const;

const firstNodes: PlacementPort = {
  async place(request) {
    const chosen = [...(request.nodes ?? [])];
    for (const n of NODES) if (chosen.length < request.ha_level && !chosen.includes(n)) chosen.push(n);
    return chosen;
  },
};

function pattern(seed: number, length: number): Buffer {
  const b = Buffer.alloc(length);
  for (let i = 0; i < length; i++) b[i] = (seed * 31 + i * 7 + 1) & 0xff;
  return b;
}

let server: EtcdServer;
beforeAll(async () => {
  server = await startEtcd();
});
afterAll(async () => {
  await server?.destroy();
});

describe('takeover (etcd, direct connector)', () => {
  let base: string;
  let store: ClusterStore;
  let connector: DirectConnector;
  const engines = new Map<string, VolumeEngine>();
  const engine = (n: string): VolumeEngine => engines.get(n) as VolumeEngine;
  const record = async (id: string): Promise<VolumeRecord> => (await store.get(`/ferry/volumes/${id}`)) as VolumeRecord;

  const start = async (n: string): Promise<VolumeEngine> => {
    const e = await openEngine({
      dataDir: join(base, n),
      store,
      nodeId: n,
      replicas: connector,
      placement: firstNodes,
    });
    engines.set(n, e);
    connector.add(n, e.replicaHost);
    return e;
  };

  /** What a dead coordinator leaves: its lease expired (the lock is gone); the record still says attached. */
  const loseLease = async (volumeId: string): Promise<void> => {
    await store.delete(attachLockKey(volumeId));
  };

  beforeEach(async () => {
    base = await mkdtemp(join(tmpdir(), 'ferry-takeover-'));
    store = openEtcdStore([server.url]);
    const left = await store.list('/');
    if (left.length > 0) await store.commit(left.map((kv) => ({ op: 'delete' as const, key: kv.key })));
    connector = new DirectConnector();
    for (const n of NODES) await start(n);
  });

  afterEach(async () => {
    for (const n of NODES) connector.setDown(n, false);
    for (const e of engines.values()) await e.close();
    engines.clear();
    await store.close();
    await rm(base, { recursive: true, force: true });
  });

  it('an old coordinator’s writes are refused after a takeover, and the new one serves every acknowledged write (F4)', async () => {
    const { volume } = await engine('node-a').createVolume({ name: 'v', size: 4 * MiB, ha_level: 2 });
    const old = await engine('node-a').openExport('v');
    await old.write(0, pattern(1, 64 * 1024));
    await old.flush();
    await old.write(128 * 1024, pattern(2, 8192)); // acknowledged, not flushed
    const oldEpoch = (await record(volume.id)).epoch as number;
    await loseLease(volume.id);
    // Node c holds no replica: it takes over through both remote ones (node a's in node a's own process).
    const taken = await engine('node-c').openExport('v');
    const now = await record(volume.id);
    expect(now.epoch).toBeGreaterThan(oldEpoch);
    expect(now.attached?.node_id).toBe('node-c');
    expect(now.replicas?.map((r) => r.state)).toEqual(['in-sync', 'in-sync']);
    // The fenced coordinator cannot write any more, nor flush: its replicas refuse its epoch (StaleEpochError).
    const refused = { code: expect.stringMatching(/FAILED_PRECONDITION|UNAVAILABLE/) };
    await expect(old.write(0, pattern(9, 4096))).rejects.toMatchObject(refused);
    // Its attempt to drop the refusing replicas (R7) fails too: its lock is gone (C1). It acknowledges nothing.
    await expect(old.flush()).rejects.toMatchObject(refused);
    await expect(old.write(8192, pattern(9, 4096))).rejects.toMatchObject(refused);
    expect((await record(volume.id)).replicas?.map((r) => r.state)).toEqual(['in-sync', 'in-sync']);
    await expect(engine('node-b').replicaHost.open({ volumeId: volume.id, epoch: oldEpoch })).rejects.toBeInstanceOf(
      StaleEpochError,
    );
    expect((await taken.read(0, 64 * 1024)).equals(pattern(1, 64 * 1024))).toBe(true);
    expect((await taken.read(128 * 1024, 8192)).equals(pattern(2, 8192))).toBe(true);
    await taken.write(4096, pattern(3, 4096));
    await taken.flush();
    expect((await taken.read(4096, 4096)).equals(pattern(3, 4096))).toBe(true);
    await taken.close();
    await old.close().catch(() => undefined);
  });

  it('a takeover with one replica unreachable marks it out-of-sync and serves every acknowledged write', async () => {
    const { volume } = await engine('node-a').createVolume({ name: 'v', size: 4 * MiB, ha_level: 2 });
    const old = await engine('node-a').openExport('v');
    await old.write(0, pattern(4, 32 * 1024));
    await old.flush();
    await old.write(MiB, pattern(5, 16 * 1024)); // acknowledged by both replicas, flushed by none
    await loseLease(volume.id);
    connector.setDown('node-a', true);
    const taken = await engine('node-b').openExport('v');
    const now = await record(volume.id);
    expect(now.attached?.node_id).toBe('node-b');
    const a = now.replicas?.find((r) => r.node_id === 'node-a');
    expect(a).toMatchObject({ state: 'out-of-sync', reason: expect.stringMatching(/unreachable at takeover/) });
    // Node b knows its recent writes: node a lacks at most what changes after the hidden base, plus those ranges.
    expect(a?.resync?.kind).toBe('dirty');
    expect(a?.resync?.base_snapshot_id).toBeDefined();
    expect(a?.resync?.extra?.some(([o, l]) => o <= MiB && MiB + 16 * 1024 <= o + l)).toBe(true);
    expect(now.replicas?.find((r) => r.node_id === 'node-b')?.state).toBe('in-sync');
    expect((await taken.read(0, 32 * 1024)).equals(pattern(4, 32 * 1024))).toBe(true);
    expect((await taken.read(MiB, 16 * 1024)).equals(pattern(5, 16 * 1024))).toBe(true);
    await taken.write(0, pattern(6, 4096));
    await taken.flush();
    await taken.close();
    await old.close().catch(() => undefined);
  });

  it('survivors that diverge in an unflushed range read alike after the takeover (F5)', async () => {
    const { volume } = await engine('node-a').createVolume({
      name: 'v',
      size: 4 * MiB,
      ha_level: 2,
      replica_nodes: ['node-b', 'node-c'],
    });
    // The writer on node a (no replica there) writes and flushes; then a write of its reaches node b only.
    const old = await engine('node-a').openExport('v');
    await old.write(0, pattern(7, 64 * 1024));
    await old.flush();
    const epoch = (await record(volume.id)).epoch as number;
    const onB = await engine('node-b').replicaHost.open({ volumeId: volume.id, epoch });
    await onB.write(16 * 1024, pattern(8, 12 * 1024));
    await onB.close();
    await loseLease(volume.id);
    connector.setDown('node-a', true);
    // Node c takes over: its own replica is the source; node b's block range is copied back from it.
    const taken = await engine('node-c').openExport('v');
    const now = await record(volume.id);
    expect(now.replicas?.map((r) => r.state)).toEqual(['in-sync', 'in-sync']);
    const fromB = await engine('node-b').replicaHost.open({ volumeId: volume.id, epoch: now.epoch as number });
    const fromC = await engine('node-c').replicaHost.open({ volumeId: volume.id, epoch: now.epoch as number });
    const onBNow = await fromB.read(0, 64 * 1024);
    const onCNow = await fromC.read(0, 64 * 1024);
    expect(onBNow.equals(onCNow)).toBe(true);
    expect(onCNow.equals(pattern(7, 64 * 1024))).toBe(true);
    await fromB.close();
    await fromC.close();
    await taken.close();
    await old.close().catch(() => undefined);
  });

  it('a survivor whose node restarted while the volume was attached is copied in full: marked out-of-sync, fill', async () => {
    const { volume } = await engine('node-a').createVolume({
      name: 'v',
      size: 4 * MiB,
      ha_level: 2,
      replica_nodes: ['node-b', 'node-c'],
    });
    const old = await engine('node-a').openExport('v');
    await old.write(0, pattern(10, 32 * 1024));
    await old.flush();
    // Node b restarts while node a coordinates: what it had not flushed is gone, and it cannot know where.
    await engine('node-b').close();
    await start('node-b');
    await loseLease(volume.id);
    connector.setDown('node-a', true);
    const taken = await engine('node-c').openExport('v');
    const b = (await record(volume.id)).replicas?.find((r) => r.node_id === 'node-b');
    expect(b).toMatchObject({
      state: 'out-of-sync',
      resync: { kind: 'fill' },
      reason: expect.stringMatching(/restarted/),
    });
    expect((await taken.read(0, 32 * 1024)).equals(pattern(10, 32 * 1024))).toBe(true);
    await taken.write(0, pattern(11, 4096));
    await taken.flush();
    await taken.close();
    await old.close().catch(() => undefined);
  });

  it('a replica being filled at takeover keeps what it had copied as a low part, and misses no later write (R14a)', async () => {
    const { volume } = await engine('node-a').createVolume({
      name: 'v',
      size: 4 * MiB,
      ha_level: 2,
      replica_nodes: ['node-a', 'node-b'],
    });
    const old = await engine('node-a').openExport('v');
    for (let i = 0; i < 8; i++) await old.write(i * 512 * 1024, pattern(20 + i, 64 * 1024));
    await old.flush();
    await old.flush();
    await old.close();
    // Node b was being filled by a coordinator that died when its copy had got to 2 MiB; b is unreachable now.
    const e = await store.getEntry<VolumeRecord>(`/ferry/volumes/${volume.id}`);
    const filling = {
      ...(e?.value as VolumeRecord),
      replicas: e?.value.replicas?.map((r) =>
        r.node_id === 'node-b'
          ? {
              node_id: 'node-b',
              state: 'filling' as const,
              resync: { kind: 'fill' as const, cursor: 2 * MiB, copied_bytes: MiB, total_bytes: MiB, started: '' },
            }
          : r,
      ),
    };
    const done = await store.txn(
      [{ key: `/ferry/volumes/${volume.id}`, modRevision: e?.modRevision ?? 0 }],
      [{ op: 'put', key: `/ferry/volumes/${volume.id}`, value: filling }],
    );
    expect(done.succeeded).toBe(true);
    connector.setDown('node-b', true);
    const taken = await engine('node-c').openExport('v');
    const b = (await record(volume.id)).replicas?.find((r) => r.node_id === 'node-b');
    expect(b).toMatchObject({ state: 'out-of-sync', resync: { kind: 'fill', cursor: 0, low: { below: 2 * MiB } } });
    const hidden = async () =>
      (await store.list<{ id: string; volume_id: string; holders?: string[] }>('/ferry/snapshots/'))
        .map((kv) => kv.value)
        .filter((s) => s.volume_id === volume.id);
    expect((await hidden()).map((s) => [s.id, s.holders])).toEqual([[b?.resync?.low?.base_snapshot_id, ['node-a']]]);
    // Writes go on without b, below its old cursor and above it.
    await taken.write(512 * 1024 + 4096, pattern(40, 8192));
    await taken.write(3 * MiB, pattern(41, 4096));
    await taken.flush();
    connector.setDown('node-b', false);
    for (let i = 0; i < 1200; i++) {
      if ((await record(volume.id)).replicas?.every((r) => r.state === 'in-sync')) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect((await record(volume.id)).replicas?.map((r) => r.state)).toEqual(['in-sync', 'in-sync']);
    await taken.flush();
    const epoch = (await record(volume.id)).epoch ?? 0;
    const ra = await connector.open('node-a', { volumeId: volume.id, epoch });
    const rb = await connector.open('node-b', { volumeId: volume.id, epoch });
    try {
      expect(await firstDifference(ra, rb, 4 * MiB)).toBeUndefined();
    } finally {
      await ra.close();
      await rb.close();
    }
    for (let i = 0; i < 200 && (await hidden()).length > 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(await hidden()).toEqual([]);
    await taken.close();
  });

  it('without an in-sync replica answering the attach fails UNAVAILABLE naming them, and changes nothing', async () => {
    const { volume } = await engine('node-a').createVolume({
      name: 'v',
      size: 4 * MiB,
      ha_level: 2,
      replica_nodes: ['node-a', 'node-b'],
    });
    const before = await record(volume.id);
    connector.setDown('node-a', true);
    connector.setDown('node-b', true);
    await expect(engine('node-c').openExport('v')).rejects.toMatchObject({
      code: 'UNAVAILABLE',
      message: expect.stringMatching(/node-a.*node-b/),
    });
    const after = await record(volume.id);
    expect(after.replicas).toEqual(before.replicas);
    expect(after.attached).toBeUndefined();
    expect(await store.list('/ferry/locks/')).toEqual([]);
  });
});
