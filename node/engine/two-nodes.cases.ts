/**
 * Two nodes on one cluster store: each engine has its own data directory and node id, and both share the store.
 * Written against a store factory so that the same cases run on every cluster-store backend (the embedded SQLite
 * store in two-nodes.test.ts; etcd where the test setup starts one).
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ClusterStore, KeyValue } from '../cluster/types.js';
import { openEngine } from './engine.js';
import type { VolumeEngine } from './types.js';

const MiB = 1024 * 1024;

/** Opens the shared store for a test (in `dir` when the backend keeps files); closed by the cases. */
export type StoreFactory = (dir: string) => Promise<ClusterStore>;

/** Every file under `dir` with a hash of its content. */
async function filesOf(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    out[relative(dir, path)] = createHash('sha256')
      .update(await readFile(path))
      .digest('hex');
  }
  return out;
}

/** The store's entries under `prefix`, as JSON text per key. */
async function keysOf(store: ClusterStore, prefix: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const kv of (await store.list(prefix)) as KeyValue[]) out[kv.key] = JSON.stringify(kv.value);
  return out;
}

export function twoNodeCases(backend: string, openStore: StoreFactory): void {
  describe(`two nodes on one cluster store (${backend})`, () => {
    let base: string;
    let store: ClusterStore;
    let a: VolumeEngine;
    let b: VolumeEngine;
    const aDir = (): string => join(base, 'a');
    const bDir = (): string => join(base, 'b');

    beforeEach(async () => {
      base = await mkdtemp(join(tmpdir(), 'ferry-two-nodes-'));
      store = await openStore(base);
      a = await openEngine({ dataDir: aDir(), store, nodeId: 'node-a' });
      // The other takes the default: the id in its data directory's node-id file.
      b = await openEngine({ dataDir: bDir(), store });
    });

    afterEach(async () => {
      await a.close();
      await b.close();
      await store.close();
      await rm(base, { recursive: true, force: true });
    });

    it('each lists every volume of the cluster, with the node holding it', async () => {
      const bId = (await readFile(join(bDir(), 'node-id'), 'utf8')).trim();
      await a.createVolume({ name: 'va', size: 4 * MiB });
      await a.createSnapshot('va', { name: 's1' });
      await b.createVolume({ name: 'vb', size: 8 * MiB, labels: { app: 'db' } });
      for (const engine of [a, b]) {
        const listed = await engine.listVolumes();
        expect(listed.map((v) => [v.name, v.replicas])).toEqual([
          ['va', [{ node_id: 'node-a', state: 'in-sync' }]],
          ['vb', [{ node_id: bId, state: 'in-sync' }]],
        ]);
      }
      expect((await a.listVolumes()).map((v) => v.held_here)).toEqual([true, false]);
      expect((await b.listVolumes()).map((v) => v.held_here)).toEqual([false, true]);
      expect(await a.inspectVolume('vb')).toMatchObject({ name: 'vb', size: 8 * MiB, labels: { app: 'db' } });
      expect(await b.inspectVolume('va')).toMatchObject({ name: 'va', snapshot_count: 1, held_here: false });
      expect((await b.listSnapshots('va')).map((s) => s.name)).toEqual(['s1']);
      expect(await b.inspectSnapshot('va@s1')).toMatchObject({ name: 's1', volume_name: 'va' });
      // Names are the cluster's: the same create is idempotent on either node, a different one is refused.
      expect((await b.createVolume({ name: 'va', size: 4 * MiB })).created).toBe(false);
      await expect(b.createVolume({ name: 'va', size: 2 * MiB })).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
      await expect(b.cloneVolume({ parent_id: 'vb', name: 'va' })).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
      // A deleted volume's name is free on every node.
      await a.deleteVolume('va');
      expect((await b.createVolume({ name: 'va', size: 2 * MiB })).created).toBe(true);
      expect(await a.inspectVolume('va')).toMatchObject({
        size: 2 * MiB,
        replicas: [{ node_id: bId, state: 'in-sync' }],
      });
    });

    it('two nodes creating one name at once make one volume: the other gets it back or ALREADY_EXISTS', async () => {
      for (let round = 0; round < 5; round++) {
        const name = `race-${round}`;
        const results = await Promise.allSettled([
          a.createVolume({ name, size: 4 * MiB }),
          b.createVolume({ name, size: 4 * MiB }),
        ]);
        const created = results.filter((r) => r.status === 'fulfilled' && r.value.created);
        expect(created.length).toBe(1);
        for (const r of results) {
          if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'ALREADY_EXISTS' });
        }
        const named = (await store.list<{ name: string }>('/ferry/volumes/')).filter((kv) => kv.value.name === name);
        expect(named.length).toBe(1);
      }
    });

    it('opens only its own replicas: the other node’s volume is refused, naming the node to attach it on', async () => {
      await a.createVolume({ name: 'va', size: 4 * MiB });
      const snap = await a.createSnapshot('va', { name: 's1' });
      const dev = await a.openExport('va');
      await dev.write(0, Buffer.alloc(4096, 7));
      await dev.close();
      const refused = { code: 'FAILED_PRECONDITION', message: expect.stringMatching(/node node-a.*attach it/) };
      await expect(b.openExport('va')).rejects.toMatchObject(refused);
      await expect(b.openExport('va@s1')).rejects.toMatchObject(refused);
      await expect(b.openForRestore('va')).rejects.toMatchObject(refused);
      await expect(b.createSnapshot('va', { name: 's2' })).rejects.toMatchObject(refused);
      await expect(b.deleteVolume('va')).rejects.toMatchObject(refused);
      await expect(b.deleteSnapshot(snap.id)).rejects.toMatchObject(refused);
      await expect(b.cloneVolume({ parent_id: snap.id, name: 'c' })).rejects.toMatchObject(refused);
      await expect(b.changedBlocks('va', {})).rejects.toMatchObject(refused);
      await expect(b.updateVolume('va', { size: 8 * MiB })).rejects.toMatchObject(refused);
      expect(await b.openProblem?.('va')).toMatch(/node node-a/);
      expect(await b.listExports()).toEqual([]);
      // On its own node it opens, with the data written there.
      const again = await a.openExport('va');
      expect((await again.read(0, 4096)).every((x) => x === 7)).toBe(true);
      await again.close();
    });

    it('collects only its own layers and never touches the other node’s records or files', async () => {
      await a.createVolume({ name: 'va', size: 4 * MiB });
      const dev = await a.openExport('va');
      await dev.write(0, Buffer.alloc(64 * 1024, 1));
      await a.createSnapshot('va', { name: 's1' });
      await dev.write(4096, Buffer.alloc(4096, 2));
      await dev.close();
      // A layer of node a left unreferenced (as a crash in the middle of a collection leaves one), with a file.
      await store.commit([
        {
          op: 'put',
          key: '/ferry/local/node-a/layers/00000000deadbeef',
          value: { id: '00000000deadbeef', parent: null, frozen: true },
        },
      ]);
      await writeFile(join(aDir(), 'layers', '00000000deadbeef.data'), Buffer.alloc(4096, 9));
      const aFiles = await filesOf(aDir());
      const aKeys = await keysOf(store, '/ferry/local/node-a/');
      const catalogOfA = JSON.stringify(await a.inspectVolume('va'));

      // Node b works and collects: snapshots made and deleted, a volume deleted, a restart (start-up collection).
      await b.createVolume({ name: 'vb', size: 4 * MiB });
      const bDev = await b.openExport('vb');
      await bDev.write(0, Buffer.alloc(8192, 3));
      const s = await b.createSnapshot('vb', { name: 'x' });
      await bDev.write(0, Buffer.alloc(4096, 4));
      await bDev.close();
      await b.deleteSnapshot(s.id);
      await b.createVolume({ name: 'gone', size: 4 * MiB });
      await b.deleteVolume('gone');
      await b.settled?.();
      await b.close();
      b = await openEngine({ dataDir: bDir(), store });
      await b.settled?.();

      expect(await filesOf(aDir())).toEqual(aFiles);
      expect(await keysOf(store, '/ferry/local/node-a/')).toEqual(aKeys);
      expect(JSON.stringify(await a.inspectVolume('va'))).toBe(catalogOfA);
      expect((await b.listVolumes()).map((v) => v.name)).toEqual(['va', 'vb']);
      // Node b's keys name only layers of its own tree: none of node a's.
      const bId = (await readFile(join(bDir(), 'node-id'), 'utf8')).trim();
      const idsUnder = async (node: string) =>
        Object.keys(await keysOf(store, `/ferry/local/${node}/layers/`)).map((k) => k.slice(k.lastIndexOf('/') + 1));
      const aIds = await idsUnder('node-a');
      expect(aIds.length).toBeGreaterThan(0);
      expect((await idsUnder(bId)).filter((id) => aIds.includes(id))).toEqual([]);

      // Node a's own start-up collects its stray layer (record and file), and its volume reads the same.
      await a.close();
      a = await openEngine({ dataDir: aDir(), store, nodeId: 'node-a' });
      expect(await store.get('/ferry/local/node-a/layers/00000000deadbeef')).toBeUndefined();
      expect(Object.keys(await filesOf(aDir()))).not.toContain(join('layers', '00000000deadbeef.data'));
      const read = await a.openExport('va');
      const head = await read.read(0, 8192);
      expect(head.subarray(0, 4096).every((x) => x === 1)).toBe(true);
      expect(head.subarray(4096).every((x) => x === 2)).toBe(true);
      await read.close();
    });
  });
}
