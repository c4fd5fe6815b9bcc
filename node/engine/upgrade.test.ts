import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../cluster/sqlite-store.js';
import type { ClusterStore, StoreOp } from '../cluster/types.js';
import { catalogKeys } from './catalog.js';
import { openEngine } from './engine.js';
import { LEGACY_LAYERS } from './local-layers.js';
import type { VolumeRecord } from './records.js';

const MiB = 1024 * 1024;

/** A store that keeps a copy of every commit made through it (the store underneath does the work). */
class RecordingStore {
  readonly commits: StoreOp[][] = [];
  readonly store: ClusterStore;
  constructor(inner: ClusterStore) {
    const commits = this.commits;
    this.store = new Proxy(inner, {
      get(target, prop, receiver) {
        if (prop === 'commit') {
          return async (ops: readonly StoreOp[]) => {
            commits.push([...ops]);
            await target.commit(ops);
          };
        }
        const value: unknown = Reflect.get(target, prop, receiver);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
  }
}

/** Rewrites a store to layout version 1: every layer under `/ferry/layers/`, volumes without `replicas` or names. */
async function toVersion1(store: ClusterStore, nodeId: string): Promise<number> {
  const ops: StoreOp[] = [];
  const layers = await store.list<{ id: string }>(`/ferry/local/${nodeId}/layers/`);
  for (const { key, value } of layers)
    ops.push({ op: 'delete', key }, { op: 'put', key: `${LEGACY_LAYERS}${value.id}`, value });
  for (const { key, value } of await store.list<VolumeRecord>(catalogKeys.volumes)) {
    const { replicas: _, ...old } = value;
    ops.push({ op: 'put', key, value: old }, { op: 'delete', key: catalogKeys.name(value.name) });
  }
  await store.commit(ops);
  return layers.length;
}

describe('a data directory written with layout version 1 (global layer keys)', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-upgrade-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('opens unchanged: its layers move under this node’s keys and its volumes name this node, in one commit', async () => {
    const first = await openEngine({ dataDir: dir });
    await first.createVolume({ name: 'v', size: 4 * MiB });
    const dev = await first.openExport('v');
    await dev.write(0, Buffer.alloc(8192, 1));
    await first.createSnapshot('v', { name: 's1' });
    await dev.write(4096, Buffer.alloc(4096, 2));
    await dev.close();
    await first.cloneVolume({ parent_id: 'v@s1', name: 'c' });
    await first.close();
    const nodeId = (await readFile(join(dir, 'node-id'), 'utf8')).trim();

    const raw = new SqliteStore(join(dir, 'cluster.db'));
    const layerCount = await toVersion1(raw, nodeId);
    expect(await raw.list(`/ferry/local/`)).toEqual([]);
    await raw.close();

    const recording = new RecordingStore(new SqliteStore(join(dir, 'cluster.db')));
    const { store } = recording;
    const engine = await openEngine({ dataDir: dir, store });
    try {
      expect(recording.commits.length).toBe(1);
      const [upgrade] = recording.commits;
      expect(upgrade?.filter((o) => o.op === 'delete' && o.key.startsWith(LEGACY_LAYERS)).length).toBe(layerCount);
      expect(upgrade?.filter((o) => o.op === 'put' && o.key.startsWith(`/ferry/local/${nodeId}/layers/`)).length).toBe(
        layerCount,
      );
      expect(await store.list(LEGACY_LAYERS)).toEqual([]);
      expect((await store.list(`/ferry/local/${nodeId}/layers/`)).length).toBe(layerCount);
      const volumes = await store.list<VolumeRecord>(catalogKeys.volumes);
      expect(volumes.map((kv) => kv.value.replicas)).toEqual([[{ node_id: nodeId }], [{ node_id: nodeId }]]);
      expect((await store.list(catalogKeys.names)).map((kv) => kv.key)).toEqual([
        catalogKeys.name('c'),
        catalogKeys.name('v'),
      ]);

      expect((await engine.listVolumes()).map((v) => [v.name, v.held_here])).toEqual([
        ['c', true],
        ['v', true],
      ]);
      expect((await engine.listSnapshots('v')).map((s) => s.name)).toEqual(['s1']);
      const v = await engine.openExport('v');
      const live = await v.read(0, 8192);
      await v.close();
      expect(live.subarray(0, 4096).every((x) => x === 1) && live.subarray(4096).every((x) => x === 2)).toBe(true);
      const c = await engine.openExport('c');
      expect((await c.read(0, 8192)).every((x) => x === 1)).toBe(true);
      await c.close();
    } finally {
      await engine.close();
      await store.close();
    }
    // A second start finds nothing to upgrade.
    const again = new RecordingStore(new SqliteStore(join(dir, 'cluster.db')));
    const reopened = await openEngine({ dataDir: dir, store: again.store });
    expect(again.commits).toEqual([]);
    await reopened.close();
    await again.store.close();
  });
});
