/**
 * Run-flat (docs/REPLICATION.md, section 3, "etcd is down"): an attached replicated volume's reads, writes and flushes
 * never touch the cluster store, so they go on while etcd is stopped (its replicas healthy); control operations fail
 * UNAVAILABLE naming etcd. Two engines in one process on a real etcd, reaching each other's replicas directly.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DirectConnector } from '../../test/support/direct-connector.js';
import { type EtcdServer, startEtcd } from '../../test/support/etcd.js';
import { openEtcdStore } from '../cluster/etcd-store.js';
import type { PlacementPort } from './cluster-ports.js';
import { openEngine } from './engine.js';

const MiB = 1024 * 1024;
const both: PlacementPort = { place: async () => ['node-a', 'node-b'] };

let server: EtcdServer;
let dir: string;
beforeAll(async () => {
  server = await startEtcd();
  dir = await mkdtemp(join(tmpdir(), 'ferry-run-flat-'));
});
afterAll(async () => {
  await server?.destroy();
  await rm(dir, { recursive: true, force: true });
});

it('with etcd stopped, an attached volume keeps serving I/O and control operations fail UNAVAILABLE naming etcd', async () => {
  const store = openEtcdStore([server.url]);
  const connector = new DirectConnector();
  const a = await openEngine({
    dataDir: join(dir, 'a'),
    store,
    nodeId: 'node-a',
    replicas: connector,
    placement: both,
  });
  const b = await openEngine({
    dataDir: join(dir, 'b'),
    store,
    nodeId: 'node-b',
    replicas: connector,
    placement: both,
  });
  connector.add('node-a', a.replicaHost);
  connector.add('node-b', b.replicaHost);
  try {
    await a.createVolume({ name: 'v', size: 4 * MiB, ha_level: 2 });
    const dev = await a.openExport('v');
    await dev.write(0, Buffer.alloc(64 * 1024, 1));
    await dev.flush();
    await server.stop();
    try {
      for (let i = 0; i < 32; i++) {
        await dev.write(i * 64 * 1024, Buffer.alloc(64 * 1024, i + 2));
        if (i % 8 === 7) await dev.flush();
      }
      await dev.flush();
      for (let i = 0; i < 32; i++) expect((await dev.read(i * 64 * 1024, 4096))[0]).toBe(i + 2);
      const unavailable = { code: 'UNAVAILABLE', message: expect.stringMatching(/etcd/) };
      await expect(a.createSnapshot('v', { name: 's' })).rejects.toMatchObject(unavailable);
      await expect(b.openExport('v')).rejects.toMatchObject(unavailable);
      await expect(a.createVolume({ name: 'w', size: MiB })).rejects.toMatchObject(unavailable);
      // Still serving after the refusals.
      await dev.write(0, Buffer.alloc(4096, 99));
      await dev.flush();
      expect((await dev.read(0, 4096))[0]).toBe(99);
    } finally {
      await server.start();
    }
    // The etcd client opens again after its circuit breaker's pause.
    for (let i = 0; ; i++) {
      const answered = await store.get('/ferry/none').then(
        () => true,
        () => false,
      );
      if (answered) break;
      if (i > 300) throw new Error('etcd never answered again');
      await new Promise((r) => setTimeout(r, 100));
    }
    await dev.close();
    // Node b's replica holds what node a's coordinator acknowledged while etcd was down.
    const onB = await b.openExport('v');
    expect((await onB.read(0, 4096))[0]).toBe(99);
    expect((await onB.read(31 * 64 * 1024, 4096))[0]).toBe(33);
    await onB.close();
  } finally {
    await a.close();
    await b.close();
    await store.close();
  }
}, 120_000);
