/** Membership across an etcd outage longer than the heartbeat lease: the node turns Online again by itself. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type EtcdServer, startEtcd } from '../../test/support/etcd.js';
import { openEtcdStore } from './etcd-store.js';
import { Membership } from './membership.js';

let server: EtcdServer;
let dir: string;

beforeAll(async () => {
  server = await startEtcd();
  dir = await mkdtemp(join(tmpdir(), 'ferry-membership-etcd-'));
}, 60_000);

afterAll(async () => {
  await server?.destroy();
  await rm(dir, { recursive: true, force: true });
});

it('announces again under a new lease once etcd is back after the old lease expired', async () => {
  const store = openEtcdStore([server.url]);
  const errors: unknown[] = [];
  const m = await Membership.open({
    dataDir: dir,
    store,
    version: '9.9.9',
    heartbeatSeconds: 1,
    onError: (err) => errors.push(err),
  });
  try {
    await m.announce('http://10.0.0.1:9001');
    expect((await m.members()).map((v) => v.status)).toEqual(['Online']);
    await server.stop();
    // Longer than the lease: etcd expires it on its own clock once it is back, and the keep-alives fail meanwhile.
    await new Promise((resolve) => setTimeout(resolve, 3000));
    await server.start();
    let status = '';
    for (let i = 0; i < 150 && status !== 'Online'; i++) {
      await new Promise((resolve) => setTimeout(resolve, 200));
      status = (await m.members().catch(() => []))[0]?.status ?? '';
    }
    expect(status).toBe('Online');
    expect(errors.length).toBeGreaterThan(0);
  } finally {
    await m.leave().catch(() => undefined);
    await store.close();
  }
}, 90_000);
