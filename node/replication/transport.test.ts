import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MemoryReplica, makePki, type Pki } from '../../test/support/replication-fixture.js';
import { ReplicationClient } from './client.js';
import { Op, requestCost } from './frame.js';
import { ReplicationServer, type ReplicationServerOptions } from './server.js';
import type { NodeCredentials, VolumeTarget } from './types.js';

const MiB = 1024 * 1024;
const VOL: VolumeTarget = { volumeId: 'vol-1', epoch: 5 };

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
): Promise<{ server: ReplicationServer; looked: string[] }> {
  const looked: string[] = [];
  const server = await ReplicationServer.listen({
    credentials: pki.b,
    handler: {
      volume: (volumeId) => {
        looked.push(volumeId);
        return volumeId === VOL.volumeId ? { epoch: VOL.epoch, replica } : undefined;
      },
    },
    ...options,
  });
  cleanup.push(() => server.close());
  return { server, looked };
}

async function dial(
  server: ReplicationServer,
  options: { credentials?: NodeCredentials; expectedNodeId?: string; maxInFlightBytes?: number } = {},
): Promise<ReplicationClient> {
  const { host, port } = server.address();
  const client = await ReplicationClient.connect({
    credentials: options.credentials ?? pki.a,
    host,
    port,
    expectedNodeId: options.expectedNodeId ?? 'node-b',
    maxInFlightBytes: options.maxInFlightBytes,
  });
  cleanup.push(() => client.close());
  return client;
}

function pattern(seed: number, length: number): Buffer {
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i += 1) out[i] = (seed * 31 + i * 7) & 0xff;
  return out;
}

describe('replication transport over mutual TLS', () => {
  it('round-trips every operation', async () => {
    const replica = new MemoryReplica(4 * MiB);
    const { server } = await serve(replica);
    const client = await dial(server);
    expect(client.peerNodeId).toBe('node-b');
    await client.ping();

    const data = pattern(1, 256 * 1024);
    await client.write(VOL, 4096, data, { fua: true });
    expect(replica.data.subarray(4096, 4096 + data.length).equals(data)).toBe(true);
    expect(await client.read(VOL, 4096, data.length)).toEqual(data);

    await client.writeZeroes(VOL, 8192, 4096);
    await client.trim(VOL, 65536, 8192, { fua: true });
    await client.flush(VOL);
    const back = await client.read(VOL, 4096, data.length);
    const expected = Buffer.from(data);
    expected.fill(0, 8192 - 4096, 8192 - 4096 + 4096);
    expected.fill(0, 65536 - 4096, 65536 - 4096 + 8192);
    expect(back.equals(expected)).toBe(true);
    expect(await client.read(VOL, 0, 0)).toEqual(Buffer.alloc(0));

    expect(replica.calls.map((c) => [c.op, c.offset, c.length, c.fua])).toEqual([
      ['write', 4096, data.length, true],
      ['read', 4096, data.length, false],
      ['writeZeroes', 8192, 4096, false],
      ['trim', 65536, 8192, true],
      ['flush', 0, 0, false],
      ['read', 4096, data.length, false],
      ['read', 0, 0, false],
    ]);
    await expect(client.read({ volumeId: 'nope', epoch: 1 }, 0, 4096)).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('maps a replica error to its FerryError code', async () => {
    const replica = new MemoryReplica(MiB);
    const { server } = await serve(replica);
    const client = await dial(server);
    // The memory replica refuses a range past its end: the client gets the same code and message; the connection goes on.
    const failed = client.write(VOL, 2 * MiB, Buffer.alloc(4096, 1));
    await expect(failed).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(failed).rejects.toThrow(/node node-b: offset: 2097152\+4096 is past the end/);
    replica.flush = () => Promise.reject(new Error('disk on fire'));
    await expect(client.flush(VOL)).rejects.toMatchObject({ code: 'INTERNAL' });
    await expect(client.flush(VOL)).rejects.toThrow(/disk on fire/);
    await client.ping();
  });

  it('a handler that throws fails that request only', async () => {
    const { server } = await serve(new MemoryReplica(MiB), {
      handler: {
        volume: () => {
          throw new Error('catalog unreadable');
        },
      },
    });
    const client = await dial(server);
    await expect(client.flush(VOL)).rejects.toMatchObject({ code: 'INTERNAL' });
    await client.ping();
  });

  it('refuses a request with an epoch older than the replica holds, and no replica call is made', async () => {
    const replica = new MemoryReplica(MiB);
    const { server } = await serve(replica);
    const client = await dial(server);
    const stale = { volumeId: VOL.volumeId, epoch: VOL.epoch - 1 };
    const refused = client.write(stale, 0, Buffer.alloc(4096, 9));
    await expect(refused).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
    await expect(refused).rejects.toThrow(/stale epoch 4 .*holds epoch 5/);
    await expect(client.flush(stale)).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
    expect(replica.calls).toEqual([]);
    expect(replica.data.equals(Buffer.alloc(MiB))).toBe(true);
    await client.write(VOL, 0, Buffer.alloc(4096, 9));
    await client.write({ volumeId: VOL.volumeId, epoch: VOL.epoch + 1 }, 4096, Buffer.alloc(4096, 9));
    expect(replica.calls.length).toBe(2);
  });

  it('pipelines: many requests in flight at once, replies matched by id in any order', async () => {
    const replica = new MemoryReplica(MiB);
    const { server } = await serve(replica);
    const client = await dial(server);
    const count = 32;
    for (let i = 0; i < count; i += 1) pattern(i, 4096).copy(replica.data, i * 4096);
    replica.hold = true;
    const reads = Array.from({ length: count }, (_, i) => client.read(VOL, i * 4096, 4096));
    await replica.heldCount(count);
    // Every request reached the replica before any reply went back; release them newest first.
    for (let i = count - 1; i >= 0; i -= 1) replica.release(i);
    const results = await Promise.all(reads);
    expect(results.map((buf, i) => buf.equals(pattern(i, 4096)))).toEqual(Array(count).fill(true));
  });

  it('bounds the bytes in flight per connection: a sender waits when the window is full', async () => {
    const replica = new MemoryReplica(32 * MiB);
    const { server } = await serve(replica);
    const limit = 4 * requestCost(Op.WRITE, MiB);
    const client = await dial(server, { maxInFlightBytes: limit });
    replica.hold = true;
    const writes = Array.from({ length: 20 }, (_, i) => client.write(VOL, i * MiB, pattern(i, MiB)));
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
    replica.hold = true;
    const writes = Array.from({ length: 16 }, (_, i) => client.write(VOL, i * MiB, pattern(i, MiB)));
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
    const { server, looked } = await serve(replica);
    const stranger = dial(server, { credentials: { ...pki.stranger, caPem: pki.a.caPem } });
    await expect(stranger).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    await expect(stranger).rejects.toThrow(/not from this cluster's CA/);
    expect(looked).toEqual([]);
    expect(server.refused).toBe(1);
  });

  it('refuses a server whose certificate is not from the cluster CA, or names another node', async () => {
    const replica = new MemoryReplica(MiB);
    const stranger = await serve(replica, { credentials: { ...pki.stranger, caPem: pki.a.caPem } });
    await expect(dial(stranger.server)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    const nodeC = await serve(replica, { credentials: pki.c });
    await expect(dial(nodeC.server)).rejects.toThrow(/node "node-c", not "node-b"/);
    await expect(dial(nodeC.server)).rejects.toMatchObject({ code: 'UNAUTHENTICATED' });
    expect([...stranger.looked, ...nodeC.looked]).toEqual([]);
  });

  it('refuses a cluster node the server does not expect', async () => {
    const replica = new MemoryReplica(MiB);
    const { server, looked } = await serve(replica, { acceptPeer: (nodeId) => nodeId === 'node-c' });
    await expect(dial(server)).rejects.toThrow(/node "node-a" is not expected/);
    expect(server.refused).toBe(1);
    expect(looked).toEqual([]);
    const fromC = await dial(server, { credentials: pki.c });
    await fromC.ping();
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
    expect(live.looked).toEqual([]);
  });

  it('a connection cut mid-stream fails every pending and waiting request with UNAVAILABLE', async () => {
    const replica = new MemoryReplica(32 * MiB);
    const { server } = await serve(replica);
    const client = await dial(server, { maxInFlightBytes: 4 * requestCost(Op.WRITE, MiB) });
    replica.hold = true;
    const writes = Array.from({ length: 10 }, (_, i) => client.write(VOL, i * MiB, pattern(i, MiB)));
    const flush = client.flush(VOL);
    await replica.heldCount(4);
    expect(client.waitingRequests).toBe(7);
    await server.close();
    const settled = await Promise.allSettled([...writes, flush]);
    for (const result of settled) {
      expect(result.status).toBe('rejected');
      expect((result as PromiseRejectedResult).reason).toMatchObject({ code: 'UNAVAILABLE' });
    }
    await expect(client.read(VOL, 0, 4096)).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    expect(client.inFlightBytes).toBe(0);
    replica.releaseAll();
  });
});
