/**
 * The fault side of the cluster fixture (test/support/cluster.ts): nodes in network namespaces, replication through
 * fault proxies the nodes announce, etcd through a proxy. A repl-2 volume's writes reach the other replica through
 * that replica's proxy (its bytes count them); a node cut off turns Offline for the others and Online again once
 * healed; a paused node likewise once resumed; a killed node restarts on its data directory with its id.
 *
 * And one case the chaos checker found (docs/REPLICATION.md F7): writes sent to a replica on a connection that timed
 * out, delivered only once the partition healed, after the replica was resynced on a new connection, are refused
 * and do not turn its data back.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { NbdClient } from './chaos/nbd-client.js';
import { startCluster, type TestCluster } from './support/cluster.js';
import { netnsAvailable } from './support/netns.js';

let cluster: TestCluster;

beforeAll(async () => {
  // This machine runs tests as root with iproute2: namespaces must work here (a failure says why).
  expect(await netnsAvailable()).toBe(true);
  cluster = await startCluster({ nodes: 3, replProxy: true, netns: true });
}, 120_000);

afterAll(async () => {
  await cluster?.cleanup();
});

/** Creates a 1 MiB volume with replicas on the two nodes given. */
async function createOnTwo(name: string, first: string, second: string): Promise<void> {
  const created = await cluster.ferry(0, [
    'volume',
    'create',
    name,
    '--size',
    '1M',
    '--repl',
    '2',
    '--nodes',
    `${first},${second}`,
  ]);
  expect(created.code, created.stderr).toBe(0);
}

function nbdOf(i: number): { host: string; port: number } {
  const url = new URL((cluster.nodes[i]?.nbdUrl ?? '').replace(/^nbd:/, 'http:'));
  return { host: url.hostname, port: Number(url.port) };
}

it('replication goes through the proxies; cut, heal, pause, resume, kill and restart as asked', async () => {
  const [a, b] = cluster.nodes;
  if (a === undefined || b === undefined) throw new Error('no nodes');
  expect(a.host?.address).not.toBe(b.host?.address);
  await createOnTwo('v', a.id, b.id);
  const before = b.replProxy?.bytes.toServer ?? 0;
  const client = await NbdClient.connect({ ...nbdOf(0), name: 'v' });
  await client.write(0, Buffer.alloc(256 * 1024, 7));
  await client.flush();
  client.close();
  // The coordinator (node 0) sent the data to node 1's replica through node 1's proxy.
  expect((b.replProxy?.bytes.toServer ?? 0) - before).toBeGreaterThanOrEqual(256 * 1024);

  await cluster.cut(1);
  await cluster.waitForStates(0, { [b.id]: 'Offline' });
  await cluster.heal(1);
  await cluster.waitForStates(0, { [b.id]: 'Online' });

  cluster.pause(2);
  const c = cluster.nodes[2];
  if (c === undefined) throw new Error('no node 2');
  await cluster.waitForStates(0, { [c.id]: 'Offline' });
  cluster.resume(2);
  await cluster.waitForStates(0, { [c.id]: 'Online' });

  await cluster.kill(1);
  await cluster.waitForStates(0, { [b.id]: 'Offline' });
  await cluster.restart(1);
  await cluster.waitForStates(0, { [b.id]: 'Online' });
  // The volume reads back through the restarted node.
  const again = await NbdClient.connect({ ...nbdOf(1), name: 'v' });
  expect((await again.read(0, 4096)).equals(Buffer.alloc(4096, 7))).toBe(true);
  again.close();
}, 180_000);

async function replicaStates(i: number, name: string): Promise<Record<string, string>> {
  const result = await cluster.ferry(i, ['--json', 'volume', 'inspect', name]);
  expect(result.code, result.stderr).toBe(0);
  const { volume } = JSON.parse(result.stdout) as { volume: { replicas: { node_id: string; state: string }[] } };
  return Object.fromEntries(volume.replicas.map((r) => [r.node_id, r.state]));
}

/** Waits until `name` is attached nowhere: a client's disconnect ends its attach in the background. */
async function detached(name: string): Promise<void> {
  for (let i = 0; ; i++) {
    const result = await cluster.ferry(0, ['--json', 'volume', 'inspect', name]);
    expect(result.code, result.stderr).toBe(0);
    if ((JSON.parse(result.stdout) as { volume: { attached_on?: string } }).volume.attached_on === undefined) return;
    if (i > 100) throw new Error(`volume ${name} stays attached`);
    await sleep(100);
  }
}

it('writes of a timed-out connection that arrive after the resync are refused: the replica keeps the newer data (F7)', async () => {
  const [a, b] = cluster.nodes;
  if (a === undefined || b === undefined || b.replProxy === undefined) throw new Error('no nodes');
  const proxy = b.replProxy;
  await createOnTwo('late', a.id, b.id);
  const client = await NbdClient.connect({ ...nbdOf(0), name: 'late', requestTimeoutMs: 30_000 });
  await client.write(0, Buffer.alloc(4096, 1));
  await client.flush();
  // The coordinator's connection to B is cut off as by a partition: the old value's write to B stays in it.
  proxy.strandAll();
  // Acknowledged once B timed out and was recorded out of sync; B is reachable on new connections, so the coordinator
  // resyncs it there at once.
  await client.write(0, Buffer.alloc(4096, 2));
  for (let i = 0; ; i++) {
    if ((await replicaStates(0, 'late'))[b.id] === 'in-sync') break;
    if (i > 300) throw new Error('B did not come back in sync');
    await sleep(100);
  }
  await client.write(0, Buffer.alloc(4096, 3));
  await client.flush();
  // The partition heals: the old connection's write of value 2 reaches B now, after value 3.
  const before = proxy.bytes.toServer;
  proxy.releaseStranded();
  for (let i = 0; proxy.bytes.toServer - before < 4096; i++) {
    if (i > 100) throw new Error('the stranded write was not delivered');
    await sleep(20);
  }
  await sleep(500);
  client.close();
  // B's replica, read through B (its own replica, in sync), holds value 3, and so does A's.
  for (const i of [1, 0]) {
    await detached('late');
    const reader = await NbdClient.connect({ ...nbdOf(i), name: 'late' });
    expect((await reader.read(0, 4096)).equals(Buffer.alloc(4096, 3)), `through node ${i}`).toBe(true);
    reader.close();
  }
}, 120_000);
