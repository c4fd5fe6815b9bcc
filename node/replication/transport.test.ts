import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MemoryHost, MemoryReplica, makePki, type Pki } from '../../test/support/replication-fixture.js';
import { ReplicationClient } from './client.js';
import { Op, requestCost, StaleEpochError } from './frame.js';
import { RemoteReplica } from './remote-replica.js';
import { replicaHandler } from './replica-service.js';
import { ReplicationServer, type ReplicationServerOptions } from './server.js';
import type { NodeCredentials } from './types.js';

const MiB = 1024 * 1024;
const VOL = { volumeId: 'vol-1', epoch: 5 };
/** The cost in the windows of one 1 MiB WRITE. */
const WRITE_MIB = requestCost(Op.WRITE, MiB, MiB);

let pki: Pki;
const cleanup: (() => Promise<void>)[] = [];

beforeAll(async () => {
  pki = await makePki();
});

afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

async function serve(
  replica: MemoryReplica,
  options: Partial<ReplicationServerOptions> = {},
): Promise<{ server: ReplicationServer; host: MemoryHost; events: string[] }> {
  const host = new MemoryHost(new Map([[VOL.volumeId, replica]]));
  const events: string[] = [];
  const server = await ReplicationServer.listen({
    credentials: pki.b,
    handler: replicaHandler(host, (event) => events.push(event)),
    ...options,
  });
  cleanup.push(() => server.close());
  return { server, host, events };
}

async function dial(
  server: ReplicationServer,
  options: {
    credentials?: NodeCredentials;
    expectedNodeId?: string;
    maxInFlightBytes?: number;
    requestTimeoutMs?: number;
  } = {},
): Promise<ReplicationClient> {
  const { host, port } = server.address();
  const client = await ReplicationClient.connect({
    credentials: options.credentials ?? pki.a,
    host,
    port,
    expectedNodeId: options.expectedNodeId ?? 'node-b',
    maxInFlightBytes: options.maxInFlightBytes,
    requestTimeoutMs: options.requestTimeoutMs,
  });
  cleanup.push(() => client.close());
  return client;
}

/** The replica of VOL (or `target`) on the connection `client`. */
function open(client: ReplicationClient, target: { volumeId: string; epoch: number } = VOL): Promise<RemoteReplica> {
  return RemoteReplica.open(client, 'node-b', target);
}

function pattern(seed: number, length: number): Buffer {
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i += 1) out[i] = (seed * 31 + i * 7) & 0xff;
  return out;
}

describe('replication transport over mutual TLS', () => {
  it('carries an uncached write as one, into page-aligned memory on the server; other writes stay cached', async () => {
    const replica = new MemoryReplica(4 * MiB);
    const { server } = await serve(replica);
    const remote = await open(await dial(server));
    await remote.write(MiB, pattern(2, 256 * 1024), { uncached: true });
    await remote.write(2 * MiB, pattern(3, 4096), { fua: true });
    expect(replica.uncachedWrites).toEqual([{ offset: MiB, length: 256 * 1024, aligned: true }]);
    expect(replica.data.subarray(MiB, MiB + 256 * 1024).equals(pattern(2, 256 * 1024))).toBe(true);
    expect(replica.calls.map((c) => [c.op, c.offset, c.fua])).toEqual([
      ['write', MiB, false],
      ['write', 2 * MiB, true],
    ]);
  });

  it('round-trips every operation', async () => {
    const replica = new MemoryReplica(4 * MiB);
    const { server, host } = await serve(replica);
    const client = await dial(server);
    expect(client.peerNodeId).toBe('node-b');
    await client.ping();
    const remote = await open(client);
    expect(host.opened).toEqual([VOL]);

    const data = pattern(1, 256 * 1024);
    await remote.write(4096, data, { fua: true });
    expect(replica.data.subarray(4096, 4096 + data.length).equals(data)).toBe(true);
    expect(await remote.read(4096, data.length)).toEqual(data);

    await remote.writeZeroes(8192, 4096);
    await remote.trim(65536, 8192, { fua: true });
    await remote.flush();
    const back = await remote.read(4096, data.length);
    const expected = Buffer.from(data);
    expected.fill(0, 8192 - 4096, 8192 - 4096 + 4096);
    expected.fill(0, 65536 - 4096, 65536 - 4096 + 8192);
    expect(back.equals(expected)).toBe(true);
    expect(await remote.read(0, 0)).toEqual(Buffer.alloc(0));
    expect(remote.generation()).toBe(3);
    expect(await remote.blockStatus(4096, 4096)).toEqual([{ length: 4096, state: 'data' }]);
    expect(await remote.blockStatus(3 * MiB, 4096)).toEqual([{ length: 4096, state: 'zero' }]);
    expect(await remote.changedBlocks({ size: 4 * MiB, offset: 0, limit: 10 })).toEqual({
      extents: [],
      block_size: 4096,
      size: 4 * MiB,
    });

    const staged = await remote.snapshot('snap-1', 'head-1');
    expect(staged.point).toBe('point-snap-1');
    expect(staged.head).toBe('head-1');
    expect(staged.ops).toEqual([{ op: 'put', key: '/test/snap-1', value: { snapshotId: 'snap-1' } }]);
    staged.commit();
    // The commit is sent at once, before the write that follows it.
    await remote.write(0, pattern(2, 4096));
    expect(await remote.refresh()).toBe(5);
    await remote.close();

    expect(replica.calls.map((c) => [c.op, c.offset, c.length, c.fua])).toEqual([
      ['write', 4096, data.length, true],
      ['read', 4096, data.length, false],
      ['writeZeroes', 8192, 4096, false],
      ['trim', 65536, 8192, true],
      ['flush', 0, 0, false],
      ['read', 4096, data.length, false],
      ['read', 0, 0, false],
      ['snapshot', 0, 0, false],
      ['commit', 0, 0, false],
      ['write', 0, 4096, false],
      ['close', 0, 0, false],
    ]);
    await expect(remote.read(0, 4096)).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
    await expect(open(client, { volumeId: 'nope', epoch: 1 })).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('maps a replica error to its FerryError code', async () => {
    const replica = new MemoryReplica(MiB);
    const { server } = await serve(replica);
    const client = await dial(server);
    const remote = await open(client);
    // The memory replica refuses a range past its end: the client gets the same code and message; the connection goes on.
    const failed = remote.write(2 * MiB, Buffer.alloc(4096, 1));
    await expect(failed).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(failed).rejects.toThrow(/node node-b: offset: 2097152\+4096 is past the end/);
    replica.flush = () => Promise.reject(new Error('disk on fire'));
    await expect(remote.flush()).rejects.toMatchObject({ code: 'INTERNAL' });
    await expect(remote.flush()).rejects.toThrow(/disk on fire/);
    await client.ping();
    await remote.write(0, Buffer.alloc(4096, 1));
  });

  it('a host that throws fails that request only', async () => {
    const { server, host } = await serve(new MemoryReplica(MiB));
    host.open = () => Promise.reject(new Error('catalog unreadable'));
    const client = await dial(server);
    await expect(open(client)).rejects.toMatchObject({ code: 'INTERNAL' });
    await expect(open(client)).rejects.toThrow(/catalog unreadable/);
    await client.ping();
  });

  it('refuses a request with an epoch other than the highest opened, and no replica call is made', async () => {
    const replica = new MemoryReplica(MiB);
    const { server } = await serve(replica);
    const client = await dial(server);
    const old = await open(client);
    const other = await dial(server);
    await expect(open(other, { volumeId: VOL.volumeId, epoch: VOL.epoch - 1 })).rejects.toThrow(
      /stale epoch 4 .*holds epoch 5/,
    );
    const next = await open(other, { volumeId: VOL.volumeId, epoch: VOL.epoch + 1 });
    replica.calls.length = 0;
    const refused = old.write(0, Buffer.alloc(4096, 9));
    await expect(refused).rejects.toBeInstanceOf(StaleEpochError);
    await expect(refused).rejects.toMatchObject({ code: 'FAILED_PRECONDITION', heldEpoch: VOL.epoch + 1 });
    await expect(refused).rejects.toThrow(/stale epoch 5 .*holds epoch 6/);
    await expect(old.flush()).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
    await expect(old.read(0, 4096)).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
    expect(replica.calls).toEqual([]);
    expect(replica.data.equals(Buffer.alloc(MiB))).toBe(true);
    await next.write(0, Buffer.alloc(4096, 9));
    expect(replica.calls.length).toBe(1);
    // The fenced coordinator may still let go of what it opened.
    await old.close();
  });

  it('an OPEN of the head on another connection supersedes the old one, after its writes in progress (F7)', async () => {
    const replica = new MemoryReplica(MiB);
    const { server, events } = await serve(replica);
    const old = await open(await dial(server));
    await old.write(8192, Buffer.alloc(4096, 1));
    // A write of the old connection is being served when the same coordinator opens the replica again elsewhere.
    replica.hold = true;
    const late = old.write(0, Buffer.alloc(4096, 7));
    await replica.heldCount(1);
    let opened = false;
    const second = await dial(server);
    const reopening = open(second).then((r) => {
      opened = true;
      return r;
    });
    expect(await replica.heldWithin(2, 50)).toBe(false);
    expect(opened).toBe(false);
    replica.hold = false;
    replica.releaseAll();
    await late;
    const next = await reopening;
    // The new connection's writes land after it; the old one's later requests are refused, and it may still close.
    await next.write(0, Buffer.alloc(4096, 2));
    await expect(old.write(0, Buffer.alloc(4096, 7))).rejects.toMatchObject({
      code: 'FAILED_PRECONDITION',
      message: expect.stringMatching(/opened again on another connection/),
    });
    await expect(old.read(8192, 4096)).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
    expect(replica.data[0]).toBe(2);
    expect(events).toContain('replication.superseded');
    await old.close();
    expect(await next.read(8192, 4096)).toEqual(Buffer.alloc(4096, 1));
    // Opening again on one connection shares its handle and supersedes nothing.
    const again = await open(second);
    await again.write(0, Buffer.alloc(4096, 3));
    expect(replica.data[0]).toBe(3);
  });

  it('a snapshot view is not fenced, and does not fence the coordinator', async () => {
    const replica = new MemoryReplica(MiB);
    const { server, host } = await serve(replica);
    const client = await dial(server);
    const head = await open(client);
    const later = await RemoteReplica.open(client, 'node-b', { ...VOL, epoch: VOL.epoch + 3, snapshotId: 'snap-1' });
    const older = await RemoteReplica.open(client, 'node-b', { ...VOL, epoch: 0, snapshotId: 'snap-2' });
    expect(host.opened.slice(1)).toEqual([
      { ...VOL, epoch: VOL.epoch + 3, snapshotId: 'snap-1' },
      { ...VOL, epoch: 0, snapshotId: 'snap-2' },
    ]);
    await head.write(0, Buffer.alloc(4096, 4));
    expect(await later.read(0, 4096)).toEqual(Buffer.alloc(4096, 4));
    expect(await older.read(0, 4096)).toEqual(Buffer.alloc(4096, 4));
    // A takeover fences the old head, not the views.
    await open(await dial(server), { ...VOL, epoch: VOL.epoch + 4 });
    await expect(head.read(0, 4096)).rejects.toBeInstanceOf(StaleEpochError);
    await expect(older.read(0, 4096)).resolves.toHaveLength(4096);
  });

  it('pipelines: many requests in flight at once, replies matched by id in any order', async () => {
    const replica = new MemoryReplica(MiB);
    const { server } = await serve(replica);
    const client = await dial(server);
    const remote = await open(client);
    const count = 32;
    for (let i = 0; i < count; i += 1) pattern(i, 4096).copy(replica.data, i * 4096);
    replica.hold = true;
    const into = Buffer.alloc(count * 4096);
    const reads = Array.from({ length: count }, (_, i) => remote.read(i * 4096, 4096, into.subarray(i * 4096)));
    await replica.heldCount(count);
    // Every request reached the replica before any reply went back; release them newest first.
    for (let i = count - 1; i >= 0; i -= 1) replica.release(i);
    const results = await Promise.all(reads);
    expect(results.map((buf, i) => buf.equals(pattern(i, 4096)))).toEqual(Array(count).fill(true));
    // Each read landed in the buffer it was given.
    expect(into.equals(replica.data.subarray(0, count * 4096))).toBe(true);
  });

  it('bounds the bytes in flight per connection: a sender waits when the window is full', async () => {
    const replica = new MemoryReplica(32 * MiB);
    const { server } = await serve(replica);
    const limit = 4 * WRITE_MIB;
    const client = await dial(server, { maxInFlightBytes: limit });
    const remote = await open(client);
    replica.hold = true;
    const writes = Array.from({ length: 20 }, (_, i) => remote.write(i * MiB, pattern(i, MiB)));
    expect(client.inFlightBytes).toBe(limit);
    expect(client.waitingRequests).toBe(16);
    await replica.heldCount(4);
    expect(await replica.heldWithin(5, 200)).toBe(false);
    let released = 0;
    while (released < 20) {
      await replica.heldCount(1);
      expect(replica.held.length).toBeLessThanOrEqual(4);
      expect(client.inFlightBytes).toBeLessThanOrEqual(limit);
      replica.release(0);
      released += 1;
    }
    await Promise.all(writes);
    expect(replica.maxHeldBytes).toBe(4 * MiB);
    expect(client.inFlightBytes).toBe(0);
    for (let i = 0; i < 20; i += 1) {
      expect(replica.data.subarray(i * MiB, (i + 1) * MiB).equals(pattern(i, MiB))).toBe(true);
    }
  });

  it('the server stops reading a connection that holds its limit, whatever the client sends', async () => {
    const replica = new MemoryReplica(32 * MiB);
    const { server } = await serve(replica, { maxInFlightBytes: 3 * MiB });
    const client = await dial(server, { maxInFlightBytes: 64 * MiB });
    const remote = await open(client);
    replica.hold = true;
    const writes = Array.from({ length: 16 }, (_, i) => remote.write(i * MiB, pattern(i, MiB)));
    expect(client.waitingRequests).toBe(0);
    await replica.heldCount(3);
    // Without the bound, the 13 other MiB would reach the replica within moments over loopback.
    expect(await replica.heldWithin(4, 500)).toBe(false);
    let released = 0;
    while (released < 16) {
      await replica.heldCount(1);
      // 3 requests of 1 MiB + headers reach the limit: the server reads no more until one is answered.
      expect(replica.held.length).toBeLessThanOrEqual(3);
      replica.release(0);
      released += 1;
    }
    await Promise.all(writes);
    expect(replica.maxHeldBytes).toBe(3 * MiB);
  });

  it('refuses a client whose certificate is not from the cluster CA', async () => {
    const replica = new MemoryReplica(MiB);
    const { server, events } = await serve(replica);
    const stranger = dial(server, { credentials: { ...pki.stranger, caPem: pki.a.caPem } });
    await expect(stranger).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    await expect(stranger).rejects.toThrow(/not from this cluster's CA/);
    expect(events).toEqual([]);
    expect(server.refused).toBe(1);
  });

  it('refuses a server whose certificate is not from the cluster CA, or names another node', async () => {
    const replica = new MemoryReplica(MiB);
    const stranger = await serve(replica, { credentials: { ...pki.stranger, caPem: pki.a.caPem } });
    await expect(dial(stranger.server)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    const nodeC = await serve(replica, { credentials: pki.c });
    await expect(dial(nodeC.server)).rejects.toThrow(/node "node-c", not "node-b"/);
    await expect(dial(nodeC.server)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    expect([...stranger.host.opened, ...nodeC.host.opened]).toEqual([]);
  });

  it('refuses a cluster node the server does not expect', async () => {
    const replica = new MemoryReplica(MiB);
    const { server, events } = await serve(replica, { acceptPeer: (nodeId) => nodeId === 'node-c' });
    await expect(dial(server)).rejects.toThrow(/node "node-a" is not expected/);
    expect(server.refused).toBe(1);
    expect(events).toEqual([]);
    const fromC = await dial(server, { credentials: pki.c });
    await fromC.ping();
    expect(events).toEqual(['replication.connect']);
  });

  it('a node that does not listen, or an aborted connect, is UNAVAILABLE', async () => {
    const { server } = await serve(new MemoryReplica(MiB));
    const { host, port } = server.address();
    await server.close();
    const attempt = { credentials: pki.a, host, port, expectedNodeId: 'node-b' };
    await expect(ReplicationClient.connect(attempt)).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    const live = await serve(new MemoryReplica(MiB));
    const controller = new AbortController();
    const connecting = ReplicationClient.connect({ ...attempt, ...live.server.address(), signal: controller.signal });
    controller.abort();
    await expect(connecting).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    expect(live.host.opened).toEqual([]);
  });

  it('a connection cut mid-stream fails every pending and waiting request with UNAVAILABLE', async () => {
    const replica = new MemoryReplica(32 * MiB);
    const { server } = await serve(replica);
    const client = await dial(server, { maxInFlightBytes: 4 * WRITE_MIB });
    const remote = await open(client);
    replica.hold = true;
    const writes = Array.from({ length: 10 }, (_, i) => remote.write(i * MiB, pattern(i, MiB)));
    const flush = remote.flush();
    await replica.heldCount(4);
    expect(client.waitingRequests).toBe(7);
    await server.close();
    const settled = await Promise.allSettled([...writes, flush]);
    for (const result of settled) {
      expect(result.status).toBe('rejected');
      expect((result as PromiseRejectedResult).reason).toMatchObject({ code: 'UNAVAILABLE' });
    }
    await expect(remote.read(0, 4096)).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    expect(client.inFlightBytes).toBe(0);
    expect(client.broken).toBe(true);
    replica.releaseAll();
  });

  it('a request unanswered within the timeout fails UNAVAILABLE and ends the connection (R6)', async () => {
    const replica = new MemoryReplica(MiB);
    const { server } = await serve(replica);
    const client = await dial(server, { requestTimeoutMs: 500 });
    const remote = await open(client);
    replica.hold = true;
    const stalled = remote.write(0, Buffer.alloc(4096, 1));
    await expect(stalled).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    await expect(stalled).rejects.toThrow(/did not answer a WRITE within 500 ms/);
    expect(client.broken).toBe(true);
    replica.releaseAll();
  });

  it('a connection that ends abandons the snapshots it staged and closes what it opened', async () => {
    const replica = new MemoryReplica(MiB);
    const { server, events } = await serve(replica);
    const client = await dial(server);
    const remote = await open(client);
    const again = await open(client);
    await remote.snapshot('snap-1');
    await client.close();
    await expect.poll(() => events.includes('replication.disconnect')).toBe(true);
    // Opened twice on one connection, opened (and closed) once on the server.
    expect(replica.calls.map((c) => c.op)).toEqual(['snapshot', 'abandon', 'close']);
    await expect(again.flush()).rejects.toMatchObject({ code: 'UNAVAILABLE' });
  });

  it('DROP closes the replica on the connection and removes it from the host', async () => {
    const replica = new MemoryReplica(MiB);
    const { server, host } = await serve(replica);
    const client = await dial(server);
    const remote = await open(client);
    const staged = await remote.snapshot('snap-1');
    await client.call({ op: Op.DROP, handle: 0, epoch: 0, payload: Buffer.from('{"volume_id":"vol-1"}') });
    expect(host.dropped).toEqual(['vol-1']);
    expect(replica.calls.map((c) => c.op)).toEqual(['snapshot', 'abandon', 'close']);
    await expect(remote.write(0, Buffer.alloc(4096))).rejects.toMatchObject({ code: 'NOT_FOUND' });
    staged.abandon();
    await expect(open(client)).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });
});
