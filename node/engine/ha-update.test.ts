import { randomBytes, randomInt } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../cluster/sqlite-store.js';
import { catalogKeys } from './catalog.js';
import type { ReplicaConnector } from './cluster-ports.js';
import { VolumeCoordinator } from './coordinator.js';
import { DeviceReplica, firstDifference } from './device-replica.testing.js';
import { openEngine } from './engine.js';
import { HaUpdater } from './ha-update.js';
import type { ReplicaFailure } from './out-of-sync.js';
import type { VolumeRecord } from './records.js';
import type { VolumeEngine } from './types.js';

const MiB = 1024 * 1024;

describe('HaUpdater', () => {
  let dir: string;
  let store: SqliteStore;
  let engine: VolumeEngine;
  let source: DeviceReplica;
  let coordinator: VolumeCoordinator;
  let updater: HaUpdater;
  /** The replicas "other nodes" hold: volumes `copy-<node>` of the same engine. */
  const remote = new Map<string, DeviceReplica>();
  const dropped: string[] = [];
  const committed: VolumeRecord[] = [];
  const released: number[] = [];
  const size = 32 * MiB;

  const record = async (): Promise<VolumeRecord> =>
    (await store.get<VolumeRecord>(catalogKeys.volume((await engine.inspectVolume('v')).id))) as VolumeRecord;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-ha-update-'));
    store = new SqliteStore(join(dir, 'cluster.db'));
    engine = await openEngine({ dataDir: dir, store, nodeId: 'node-a' });
    await engine.createVolume({ name: 'v', size });
    for (const node of ['node-b', 'node-c']) await engine.createVolume({ name: `copy-${node}`, size });
    source = await DeviceReplica.open('node-a', engine, 'v');
    for (let i = 0; i < 12; i++) await source.write(i * 2 * MiB + 4096, randomBytes(MiB));
    coordinator = new VolumeCoordinator([source], { localNodeId: 'node-a' });
    const connector: ReplicaConnector = {
      open: async (nodeId) => {
        const replica = await DeviceReplica.open(nodeId, engine, `copy-${nodeId}`);
        remote.set(nodeId, replica);
        return replica;
      },
      drop: async (nodeId) => {
        dropped.push(nodeId);
      },
    };
    updater = new HaUpdater({
      store,
      nodeId: 'node-a',
      replicas: connector,
      placement: { place: async (req) => ['node-b', 'node-c'].filter((n) => !req.exclude?.includes(n)) },
      useCoordinator: async () => ({
        coordinator,
        epoch: 7,
        release: async () => {
          released.push(1);
        },
      }),
      attachedHere: () => coordinator,
      recordChanged: (r) => committed.push(r),
      log: () => undefined,
      fill: { stepBytes: 512 * 1024, depth: 4, flushBytes: MiB },
      progressIntervalMs: 0,
    });
  });

  afterEach(async () => {
    await updater.close();
    await coordinator.close();
    for (const r of remote.values()) await r.close();
    remote.clear();
    dropped.length = 0;
    committed.length = 0;
    released.length = 0;
    await engine.close();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('raises ha_level under a writer: the new replica is filling at once, then in sync and identical', async () => {
    let writing = true;
    const writer = (async () => {
      while (writing) await coordinator.write(randomInt(0, size - 70_000), randomBytes(randomInt(1, 65_536)));
    })();
    const added = await updater.update(await record(), { ha_level: 2 });
    expect(added.ha_level).toBe(2);
    expect(added.replicas?.[1]).toMatchObject({
      node_id: 'node-b',
      state: 'filling',
      resync: { kind: 'fill', cursor: 0, copied_bytes: 0 },
    });
    // The 12 MiB written before, plus what the running writer allocated before the count.
    expect(added.replicas?.[1]?.resync?.total_bytes).toBeGreaterThanOrEqual(12 * MiB);
    // One step at a time.
    await expect(updater.update(added, { ha_level: 3 })).rejects.toMatchObject({
      code: 'FAILED_PRECONDITION',
      message: expect.stringMatching(/being filled on node node-b/),
    });
    await updater.settled(added.id);
    writing = false;
    await writer;
    const done = await record();
    expect(done.replicas).toEqual([
      { node_id: 'node-a', state: 'in-sync' },
      { node_id: 'node-b', state: 'in-sync' },
    ]);
    expect(coordinator.inSyncNodes()).toEqual(['node-a', 'node-b']);
    expect(released).toEqual([1]);
    // Progress reached the record while filling (cursor on flush), in cursor order.
    const cursors = committed
      .map((r) => r.replicas?.find((x) => x.node_id === 'node-b')?.resync?.cursor)
      .filter((c) => c !== undefined);
    expect(cursors.some((c) => c > 0 && c < size)).toBe(true);
    expect(cursors).toEqual([...cursors].sort((x, y) => x - y));
    await coordinator.flush();
    expect(await firstDifference(source, remote.get('node-b') as DeviceReplica, size)).toBeUndefined();
  });

  it('refuses what is not one step, and names the node a volume attached elsewhere runs on', async () => {
    const r = await record();
    await expect(updater.update(r, { ha_level: 4 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(updater.update(r, { ha_level: 0 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(updater.update(r, { ha_level: 3 })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: expect.stringMatching(/one replica at a time/),
    });
    await expect(updater.update(r, { ha_level: 2, replica_node: 'node-a' })).rejects.toMatchObject({
      code: 'FAILED_PRECONDITION',
      message: 'node node-a already holds a replica of volume v',
    });
    expect(await updater.update(r, { ha_level: 1 })).toBe(r);
    const elsewhere = { ...r, attached: { node_id: 'node-z', since: new Date().toISOString() } };
    await expect(updater.update(elsewhere, { ha_level: 2 })).rejects.toMatchObject({
      code: 'FAILED_PRECONDITION',
      nodeId: 'node-z',
    });
    expect(await record()).toEqual(r);
  });

  it('marks a replica that fails while filling out of sync before acknowledging the write it missed (R7), and keeps serving', async () => {
    const target = await (async () => {
      await updater.update(await record(), { ha_level: 2, replica_node: 'node-c' });
      return remote.get('node-c') as DeviceReplica;
    })();
    let failed: Promise<void> | undefined;
    let missed!: (write: Promise<void>) => void;
    const missing = new Promise<Promise<void>>((resolve) => {
      missed = resolve;
    });
    source.onRead = () => {
      if (source.readBytes < 4 * MiB || failed !== undefined) return;
      target.failWith = new Error('disk gone');
      failed = coordinator.write(0, randomBytes(4096));
      missed(failed);
    };
    // The write the new replica missed is acknowledged only once the record says so.
    await await missing;
    expect((await record()).replicas?.[1]?.state).toBe('out-of-sync');
    await updater.settled();
    source.onRead = undefined;
    const after = await record();
    expect(after.ha_level).toBe(2);
    expect(after.replicas?.[1]).toMatchObject({ node_id: 'node-c', state: 'out-of-sync', resync: { kind: 'fill' } });
    expect(coordinator.fillingNodes()).toEqual([]);
    expect(target.closed).toBe(true);
    await coordinator.write(MiB, Buffer.alloc(4096, 1));
    expect((await coordinator.read(MiB, 4096)).every((x) => x === 1)).toBe(true);
    // Lowering drops the out-of-sync one.
    const lowered = await updater.update(after, { ha_level: 1 });
    expect(lowered.replicas).toEqual([{ node_id: 'node-a', state: 'in-sync' }]);
    expect(dropped).toEqual(['node-c']);
  });

  it('a fill that fails half way is recorded with cursor 0 at once, then narrowed to a low base with writes held (R14a)', async () => {
    const calls: { failures: readonly ReplicaFailure[]; heldWrite: boolean }[] = [];
    source.recentWrites = async () => ({ complete: true, ranges: [[0, 4096]] });
    const raising = new HaUpdater({
      store,
      nodeId: 'node-a',
      replicas: {
        open: async (nodeId) => {
          const replica = await DeviceReplica.open(nodeId, engine, `copy-${nodeId}`);
          remote.set(nodeId, replica);
          return replica;
        },
        drop: async () => undefined,
      },
      useCoordinator: async () => ({
        coordinator,
        epoch: 7,
        release: async () => undefined,
        markFilling: async (failures) => {
          // New writes wait until the low base is frozen and committed.
          let landed = false;
          const write = coordinator.write(8 * MiB, randomBytes(4096)).then(() => {
            landed = true;
          });
          await new Promise((r) => setTimeout(r, 50));
          calls.push({ failures, heldWrite: !landed });
          void write;
          return record();
        },
      }),
      log: () => undefined,
      fill: { stepBytes: 512 * 1024, depth: 2, flushBytes: MiB },
      progressIntervalMs: 0,
    });
    try {
      await raising.update(await record(), { ha_level: 2, replica_node: 'node-c' });
      const target = remote.get('node-c') as DeviceReplica;
      source.onRead = () => {
        if (source.readBytes >= 8 * MiB && target.failWith === undefined) target.failWith = new Error('disk gone');
      };
      await raising.settled();
      source.onRead = undefined;
      const entry = (await record()).replicas?.[1];
      expect(entry).toMatchObject({ node_id: 'node-c', state: 'out-of-sync', resync: { kind: 'fill', cursor: 0 } });
      expect(calls).toHaveLength(1);
      const [call] = calls;
      expect(call?.heldWrite).toBe(true);
      expect(call?.failures).toHaveLength(1);
      const [f] = call?.failures ?? [];
      // Extra: what was not flushed on every replica at the failure (nothing here: the writes before were flushed).
      expect(f).toMatchObject({ nodeId: 'node-c', extra: [], entry });
      expect(f?.copy?.cursor).toBeGreaterThan(0);
      // The writes held meanwhile went on once it was done.
      await coordinator.write(MiB, Buffer.alloc(4096, 2));
    } finally {
      await raising.close();
    }
  });

  it('lowers: drops the named replica or a non-local one, never the last in-sync one, and stops a fill it drops', async () => {
    await updater.update(await record(), { ha_level: 2 });
    await updater.settled();
    await expect(updater.update(await record(), { ha_level: 1, replica_node: 'node-c' })).rejects.toMatchObject({
      code: 'FAILED_PRECONDITION',
      message: 'node node-c holds no replica of volume v',
    });
    const lowered = await updater.update(await record(), { ha_level: 1 });
    expect(lowered.replicas).toEqual([{ node_id: 'node-a', state: 'in-sync' }]);
    expect(dropped).toEqual(['node-b']);
    expect(coordinator.replicas.map((r) => r.nodeId)).toEqual(['node-a']);
    expect(remote.get('node-b')?.closed).toBe(true);
    await expect(updater.update(lowered, { ha_level: 0 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    // The only in-sync replica, with a filling one: lowering drops the filling one and stops its fill.
    await updater.update(lowered, { ha_level: 2, replica_node: 'node-c' });
    const stopped = await updater.update(await record(), { ha_level: 1 });
    expect(stopped.replicas).toEqual([{ node_id: 'node-a', state: 'in-sync' }]);
    expect(updater.fillingNode(stopped.id)).toBeUndefined();
    expect(coordinator.fillingNodes()).toEqual([]);
    expect(dropped).toEqual(['node-b', 'node-c']);
    await expect(
      updater.update(
        {
          ...stopped,
          ha_level: 2,
          replicas: [
            { node_id: 'node-a', state: 'in-sync' },
            { node_id: 'node-b', state: 'out-of-sync' },
          ],
        },
        {
          ha_level: 1,
          replica_node: 'node-a',
        },
      ),
    ).rejects.toMatchObject({ code: 'FAILED_PRECONDITION', message: expect.stringMatching(/only in-sync replica/) });
  });

  it('is what the engine applies for ha_level in updateVolume (a node alone cannot raise it)', async () => {
    await expect(engine.updateVolume('copy-node-b', { ha_level: 3 })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
    await expect(engine.updateVolume('copy-node-b', { ha_level: 2 })).rejects.toMatchObject({
      code: 'FAILED_PRECONDITION',
      message: expect.stringMatching(/runs alone/),
    });
    const same = await engine.updateVolume('copy-node-b', { ha_level: 1, labels: { app: 'db' } });
    expect(same).toMatchObject({
      ha_level: 1,
      labels: { app: 'db' },
      replicas: [{ node_id: 'node-a', state: 'in-sync' }],
    });
  });
});
