/**
 * RemoteReplica: the Replica contract over loopback mutual TLS to a replication service whose host serves the
 * engine's LocalReplicas (real layer files, SQLite store), and what the connector adds: one pooled connection per
 * node, made again after it broke, fencing by epoch, drop.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { makePki, type Pki } from '../../test/support/replication-fixture.js';
import { headNotAbandoned } from '../engine/local-layers.js';
import { replicaConformance } from '../engine/replica-conformance.js';
import { RemoteReplicas } from './connector.js';
import { StaleEpochError } from './frame.js';
import { LayerReplicaHost } from './layer-replica-host.js';
import { type ReplicaService, serveReplicas } from './replica-service.js';

const VOLUME = 'vol-remote';
const EPOCH = 7;
let pkiPromise: Promise<Pki> | undefined;

/** The test PKI, made once for the file. */
function testPki(): Promise<Pki> {
  if (pkiPromise === undefined) pkiPromise = makePki();
  return pkiPromise;
}

/** A LayerReplicaHost of node-b in a temporary directory, served on loopback, and node-a's connector to it. */
async function startNodeB(options: { requestTimeoutMs?: number } = {}) {
  const pki = await testPki();
  const dir = await mkdtemp(join(tmpdir(), 'ferry-remote-'));
  const host = await LayerReplicaHost.open(dir, 'node-b');
  const events: string[] = [];
  let service: ReplicaService = await serveReplicas({
    host,
    credentials: pki.b,
    listen: { host: '127.0.0.1', port: 0 },
    log: (event) => events.push(event),
  });
  const connector = new RemoteReplicas({
    credentials: pki.a,
    addressOf: async (nodeId) => {
      if (nodeId !== 'node-b') throw new Error(`unknown node ${nodeId}`);
      return { host: '127.0.0.1', port: service.port };
    },
    ...(options.requestTimeoutMs !== undefined && { requestTimeoutMs: options.requestTimeoutMs }),
  });
  return {
    host,
    events,
    connector,
    /** Stops node-b's service and starts it again on another port (same host: same replicas). */
    restart: async () => {
      await service.close();
      service = await serveReplicas({ host, credentials: pki.b, listen: { host: '127.0.0.1', port: 0 } });
    },
    close: async () => {
      await connector.close();
      await service.close();
      await host.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

replicaConformance('RemoteReplica over mutual TLS to LocalReplica', async () => {
  const b = await startNodeB();
  const replica = await b.connector.open('node-b', { volumeId: VOLUME, epoch: EPOCH });
  return {
    replica,
    size: 64 * 1024 * 1024,
    record: (snapshotId, staged) => b.host.recordSnapshot(VOLUME, snapshotId, staged),
    openSnapshot: (snapshotId) => b.connector.open('node-b', { volumeId: VOLUME, epoch: EPOCH, snapshotId }),
    close: b.close,
  };
});

/** Resolves once the service logged the end of a connection (its session closed, S4 settled). */
async function disconnected(events: string[]): Promise<void> {
  while (!events.includes('replication.disconnect')) await new Promise((resolve) => setTimeout(resolve, 10));
}

describe('RemoteReplicas (the ReplicaConnector over the wire)', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });

  it('shares one connection per node, and makes a new one after it broke', async () => {
    const b = await startNodeB();
    cleanup.push(b.close);
    const one = await b.connector.open('node-b', { volumeId: VOLUME, epoch: EPOCH });
    const two = await b.connector.open('node-b', { volumeId: 'vol-other', epoch: EPOCH });
    await one.write(0, Buffer.alloc(4096, 1));
    await two.write(0, Buffer.alloc(4096, 2));
    expect(b.events.filter((e) => e === 'replication.connect')).toHaveLength(1);

    await b.restart();
    // The replicas of the lost connection are failed (R6); a new open connects again.
    await expect(one.read(0, 4096)).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    const again = await b.connector.open('node-b', { volumeId: VOLUME, epoch: EPOCH });
    expect(await again.read(0, 4096)).toEqual(Buffer.alloc(4096, 1));
    await again.close();
    await expect(b.connector.open('node-x', { volumeId: VOLUME, epoch: EPOCH })).rejects.toThrow(/unknown node/);
  });

  it('fences: a later epoch opened by another coordinator refuses the older one', async () => {
    const b = await startNodeB();
    cleanup.push(b.close);
    const old = await b.connector.open('node-b', { volumeId: VOLUME, epoch: EPOCH });
    await old.write(0, Buffer.alloc(4096, 1));
    const next = await b.connector.open('node-b', { volumeId: VOLUME, epoch: EPOCH + 1 });
    const refused = old.write(0, Buffer.alloc(4096, 2));
    await expect(refused).rejects.toBeInstanceOf(StaleEpochError);
    await expect(refused).rejects.toMatchObject({ code: 'FAILED_PRECONDITION', heldEpoch: EPOCH + 1 });
    await expect(b.connector.open('node-b', { volumeId: VOLUME, epoch: EPOCH })).rejects.toMatchObject({
      code: 'FAILED_PRECONDITION',
    });
    expect(await next.read(0, 4096)).toEqual(Buffer.alloc(4096, 1));
    await old.close();
    await next.close();
  });

  it('drop removes the replica from the node', async () => {
    const b = await startNodeB();
    cleanup.push(b.close);
    const replica = await b.connector.open('node-b', { volumeId: VOLUME, epoch: EPOCH });
    await replica.write(0, Buffer.alloc(4096, 3));
    await b.connector.drop('node-b', VOLUME);
    await expect(replica.read(0, 4096)).rejects.toMatchObject({ code: 'NOT_FOUND' });
    // The layer host starts a dropped volume anew, empty.
    const fresh = await b.connector.open('node-b', { volumeId: VOLUME, epoch: EPOCH });
    expect(await fresh.read(0, 4096)).toEqual(Buffer.alloc(4096));
    await fresh.close();
  });

  it('a snapshot whose commit never arrived is settled by the store: committed when its transaction was (S4)', async () => {
    const b = await startNodeB();
    cleanup.push(b.close);
    const replica = await b.connector.open('node-b', { volumeId: VOLUME, epoch: EPOCH });
    await replica.write(0, Buffer.alloc(4096, 1));
    const staged = await replica.snapshot('snap-s4', 'a1a1a1a1a1a1a1a1');
    // The coordinator's transaction commits; its connection ends before the commit reaches the replica.
    expect(await b.host.recordSnapshot(VOLUME, 'snap-s4', staged, [headNotAbandoned('node-b', staged.head)])).toBe(
      true,
    );
    await b.restart();
    await disconnected(b.events);
    await expect(replica.read(0, 4096)).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    const again = await b.connector.open('node-b', { volumeId: VOLUME, epoch: EPOCH });
    await again.write(0, Buffer.alloc(4096, 2));
    // The write after the cut went above the frozen point: the snapshot still reads what it froze.
    const view = await b.connector.open('node-b', { volumeId: VOLUME, epoch: EPOCH, snapshotId: 'snap-s4' });
    expect(await view.read(0, 4096)).toEqual(Buffer.alloc(4096, 1));
    expect(await again.read(0, 4096)).toEqual(Buffer.alloc(4096, 2));
    await view.close();
    await again.close();
  });

  it('a snapshot whose commit never arrived and was not committed is abandoned, and can no longer commit (S4)', async () => {
    const b = await startNodeB();
    cleanup.push(b.close);
    const replica = await b.connector.open('node-b', { volumeId: VOLUME, epoch: EPOCH });
    await replica.write(0, Buffer.alloc(4096, 1));
    const staged = await replica.snapshot('snap-late', 'b2b2b2b2b2b2b2b2');
    await b.restart();
    await disconnected(b.events);
    // The coordinator's transaction comes too late: the tombstone the replica left makes it fail.
    expect(await b.host.recordSnapshot(VOLUME, 'snap-late', staged, [headNotAbandoned('node-b', staged.head)])).toBe(
      false,
    );
    const again = await b.connector.open('node-b', { volumeId: VOLUME, epoch: EPOCH });
    await again.write(0, Buffer.alloc(4096, 2));
    expect(await again.read(0, 4096)).toEqual(Buffer.alloc(4096, 2));
    await again.close();
  });

  it('a closed connector refuses opens', async () => {
    const b = await startNodeB();
    cleanup.push(b.close);
    await b.connector.close();
    await expect(b.connector.open('node-b', { volumeId: VOLUME, epoch: EPOCH })).rejects.toMatchObject({
      code: 'UNAVAILABLE',
    });
  });
});
