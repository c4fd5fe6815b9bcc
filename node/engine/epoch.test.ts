/**
 * F3 on one node: the highest epoch a replica was opened under is durable (node/engine/epoch-file.ts), so an open
 * under an older one stays refused across a restart of the engine, and a replica opened under an older epoch refuses
 * every request once a later one opened the volume, in the same process too.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openEngine } from './engine.js';
import { StaleEpochError } from './replica.js';
import type { VolumeEngine } from './types.js';

describe('durable epochs (F3)', () => {
  let dir: string;
  let engine: VolumeEngine;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-epoch-'));
    engine = await openEngine({ dataDir: dir });
  });

  afterEach(async () => {
    await engine.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('an engine restart keeps refusing the older epoch, and a fenced replica refuses every request', async () => {
    const info = (await engine.createVolume({ name: 'v', size: 1024 * 1024 })).volume;
    const old = await engine.replicaHost.open({ volumeId: info.id, epoch: 5 });
    await old.write(0, Buffer.alloc(4096, 1));
    await old.flush();
    const next = await engine.replicaHost.open({ volumeId: info.id, epoch: 7 });
    // The old open is fenced though it lives in this very process.
    await expect(old.write(0, Buffer.alloc(4096, 2))).rejects.toBeInstanceOf(StaleEpochError);
    await expect(old.read(0, 4096)).rejects.toMatchObject({ heldEpoch: 7 });
    await expect(old.flush()).rejects.toBeInstanceOf(StaleEpochError);
    await expect(old.recentWrites()).rejects.toBeInstanceOf(StaleEpochError);
    await next.write(4096, Buffer.alloc(4096, 3));
    await next.flush();
    await old.close();
    await next.close();
    await expect(engine.replicaHost.open({ volumeId: info.id, epoch: 6 })).rejects.toBeInstanceOf(StaleEpochError);

    await engine.close();
    engine = await openEngine({ dataDir: dir });
    await expect(engine.replicaHost.open({ volumeId: info.id, epoch: 6 })).rejects.toMatchObject({
      code: 'FAILED_PRECONDITION',
      heldEpoch: 7,
    });
    const again = await engine.replicaHost.open({ volumeId: info.id, epoch: 7 });
    expect((await again.read(0, 4096))[0]).toBe(1);
    expect((await again.read(4096, 4096))[0]).toBe(3);
    await again.close();
    const later = await engine.replicaHost.open({ volumeId: info.id, epoch: 9 });
    await later.close();
    await engine.close();
    engine = await openEngine({ dataDir: dir });
    await expect(engine.replicaHost.open({ volumeId: info.id, epoch: 8 })).rejects.toMatchObject({ heldEpoch: 9 });
  });
});
