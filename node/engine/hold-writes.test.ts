/**
 * holdWrites, a migration's cutover: writes through an attachment wait while the hold lasts; ending it 'up' lets them
 * go on, ending it 'migrated' fails them and every later one; nobody attaches the volume meanwhile or afterwards.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { isFerryError } from '../../common/index.js';
import { openEngine } from './engine.js';
import type { VolumeEngine, WriteHold } from './types.js';

let dir: string;
let engine: VolumeEngine;
const MiB = 1024 * 1024;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-hold-'));
  engine = await openEngine({ dataDir: dir });
  await engine.createVolume({ name: 'v', size: MiB });
});

afterEach(async () => {
  await engine.close();
  await rm(dir, { recursive: true, force: true });
});

async function hold(): Promise<WriteHold> {
  const h = await engine.holdWrites?.('v');
  if (h === undefined) throw new Error('no holdWrites');
  return h;
}

/** Whether `p` settles within a few turns of the event loop. */
async function settlesSoon(p: Promise<unknown>): Promise<boolean> {
  let settled = false;
  void p.then(
    () => {
      settled = true;
    },
    () => {
      settled = true;
    },
  );
  await new Promise((resolve) => setTimeout(resolve, 50));
  return settled;
}

it('holds writes until the hold ends up; meanwhile the volume is migrating and nobody attaches it', async () => {
  const dev = await engine.openExport('v');
  await dev.write(0, Buffer.alloc(4096, 1));
  const h = await hold();
  expect((await engine.inspectVolume('v')).status).toBe('migrating');
  const held = dev.write(0, Buffer.alloc(4096, 2));
  expect(await settlesSoon(held)).toBe(false);
  // Reads and snapshots go on (the cutover's last snapshot is taken under the hold), without the held write.
  expect((await dev.read(0, 1))[0]).toBe(1);
  await engine.createSnapshot('v', { name: 'cut' });
  await h.end({ state: 'up' });
  await held;
  expect((await engine.inspectVolume('v')).status).toBe('up');
  expect((await dev.read(0, 1))[0]).toBe(2);
  await dev.close();
  const snap = await engine.openExport('v@cut');
  expect((await snap.read(0, 1))[0]).toBe(1);
  await snap.close();

  // A volume attached nowhere: the hold keeps every attach out until it ends.
  await engine.createVolume({ name: 'w', size: MiB });
  const w = await engine.holdWrites?.('w');
  await expect(engine.openExport('w')).rejects.toSatisfy(
    (err: unknown) => isFerryError(err, 'FAILED_PRECONDITION') && /being cut over/.test((err as Error).message),
  );
  await w?.end({ state: 'up' });
  await (await engine.openExport('w')).close();
});

it('a write held when its device closes fails as closed, and reaches no replica', async () => {
  const dev = await engine.openExport('v');
  const h = await hold();
  const held = dev.write(0, Buffer.alloc(4096, 5));
  await dev.close();
  await h.end({ state: 'up' });
  await expect(held).rejects.toThrow(/closed/);
  const again = await engine.openExport('v');
  expect((await again.read(0, 1))[0]).toBe(0);
  await again.close();
});

it('ending the hold migrated fails the held writes and every later one, and survives a restart', async () => {
  const dev = await engine.openExport('v');
  const h = await hold();
  const held = dev.write(0, Buffer.alloc(4096, 9));
  await h.end({ state: 'migrated', to: 'dc2/v' });
  await expect(held).rejects.toSatisfy((err: unknown) => isFerryError(err, 'PERMISSION_DENIED'));
  await expect(dev.write(4096, Buffer.alloc(4096, 9))).rejects.toSatisfy((err: unknown) =>
    isFerryError(err, 'PERMISSION_DENIED'),
  );
  await dev.close();
  const info = await engine.inspectVolume('v');
  expect([info.status, info.migrated_to]).toEqual(['migrated', 'dc2/v']);
  await engine.close();
  engine = await openEngine({ dataDir: dir });
  await expect(engine.openExport('v')).rejects.toThrow(/migrated to dc2\/v/);
  expect(await engine.holdWrites?.('v').catch((err: unknown) => (err as Error).message)).toMatch(/migrated/);
});

it('a hold a stopped node left is ended by endHold (nothing when the volume is not migrating)', async () => {
  await hold();
  await engine.close();
  engine = await openEngine({ dataDir: dir });
  expect((await engine.inspectVolume('v')).status).toBe('migrating');
  expect((await engine.endHold?.('v', { state: 'up' }))?.status).toBe('up');
  expect((await engine.endHold?.('v', { state: 'migrated', to: 'x' }))?.status).toBe('up');
  const dev = await engine.openExport('v');
  await dev.write(0, Buffer.alloc(4096, 3));
  await dev.close();
});
