/**
 * Jobs without a block source (the serverless handler's): backups and restores are refused UNAVAILABLE with one
 * message, before anything is queued; verify and the operations on repositories work as on a node.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { FerryError } from '../../common/index.js';
import { backup, type KeyHarness, openHarness, volumeWithData } from '../../test/support/key-harness.js';
import { NO_BLOCK_SOURCE_MESSAGE } from '../ports.js';
import { CloudBackups } from './cloud-backups.js';

let h: KeyHarness | undefined;
let alone: CloudBackups | undefined;

afterEach(async () => {
  await alone?.close();
  await h?.close();
  alone = undefined;
  h = undefined;
});

/** A node that took one backup of `vol` with credential `c`, and jobs on its cluster store with no block source. */
async function setUp(): Promise<{ h: KeyHarness; alone: CloudBackups; backupId: string }> {
  h = await openHarness();
  await h.credential('c', {});
  await volumeWithData(h.engine, 'vol');
  const done = await backup(h, 'vol', 'c');
  expect(done.status).toBe('Done');
  alone = await CloudBackups.open({
    store: h.clusterStore,
    credentials: h.credentials,
    keys: h.keyring,
    providers: h.providers.lookup,
  });
  return { h, alone, backupId: done.backup_id ?? '' };
}

const refused = { code: 'UNAVAILABLE', message: NO_BLOCK_SOURCE_MESSAGE };

describe('cloud backups without a block source', () => {
  it('refuses backups, group backups and restores UNAVAILABLE, queueing nothing', async () => {
    const { alone, backupId } = await setUp();
    const before = (await alone.jobs.list()).length;
    await expect(alone.jobs.submitBackup({ volume_id: 'vol', credential_id: 'c' })).rejects.toMatchObject(refused);
    await expect(alone.jobs.submitGroup({ volume_ids: ['vol'], credential_id: 'c' })).rejects.toMatchObject(refused);
    await expect(
      alone.jobs.submitRestore({ backup_id: backupId, credential_id: 'c', restore_volume_name: 'back' }),
    ).rejects.toMatchObject(refused);
    await expect(alone.jobs.submitBackup({ volume_id: 'vol', credential_id: 'c' })).rejects.toBeInstanceOf(FerryError);
    expect((await alone.jobs.list()).length).toBe(before);
  });

  it('lists, catalogs and verifies backups from the repository', async () => {
    const { alone, backupId } = await setUp();
    const page = await alone.enumerate({ credential_id: 'c' });
    expect(page.backups.map((b) => b.id)).toEqual([backupId]);
    const catalog = await alone.catalog('c', backupId);
    expect(catalog.chunks).toBeGreaterThan(0);
    const job = await alone.jobs.submitVerify({ credential_id: 'c', backup_id: backupId });
    const verified = await alone.jobs.wait(job.task_id);
    expect(verified.status).toBe('Done');
    expect(verified.verify?.problems_total).toBe(0);
  });
});
