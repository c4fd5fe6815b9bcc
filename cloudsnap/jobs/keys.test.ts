/**
 * KEK rotation, crypto-shredding and per-volume KEK overrides, through the jobs and the KeyService of a node in this
 * process (directory object store, local keyring; Vault Transit through its protocol-level stand-in).
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FerryError } from '../../common/index.js';
import { createVaultClient, VaultTransitProvider } from '../../kms/index.js';
import {
  backup,
  digest,
  filesUnder,
  type KeyHarness,
  openHarness,
  restore,
  volumeWithData,
} from '../../test/support/key-harness.js';
import { rejection } from '../../test/support/rejection.js';
import { startVaultTransitStandin, type VaultTransitStandin } from '../../test/support/vault-transit-standin.js';
import type { RepoConfig } from '../repo/repository.js';

let h: KeyHarness;
let vault: VaultTransitStandin | undefined;

afterEach(async () => {
  await h.close();
  await vault?.close();
  vault = undefined;
});

async function config(path: string): Promise<RepoConfig> {
  const files = await filesUnder(path);
  const raw = files.get(join(path, 'config'));
  if (raw === undefined) throw new Error(`no config under ${path}`);
  return JSON.parse(raw.toString('utf8')) as RepoConfig;
}

describe('rotation', () => {
  it('local: new KEK version, config rewrapped in place, no other object touched, restores across it', async () => {
    h = await openHarness();
    await h.keyring.createKek('team');
    await h.credential('c', { kek: 'team', prefix: 'cluster-a' });
    await volumeWithData(h.engine, 'v');
    const before = await backup(h, 'v', 'c');
    expect(before.info).toEqual([]);
    expect(before.status).toBe('Done');
    const root = join(h.objects, 'backups', 'cluster-a');
    const old = await config(root);
    const filesBefore = await filesUnder(root);

    const result = await h.keys.rotate({ kek: 'team' });
    expect(result).toMatchObject({ kek: 'team', key_provider: 'local', version: 2 });
    expect(result.repositories).toEqual([
      expect.objectContaining({ repository: old.id, from_version: 1, to_version: 2, provider: 'local' }),
    ]);
    const rotated = await config(root);
    expect(rotated.id).toBe(old.id);
    expect(rotated.key.wrapped.kek_version).toBe(2);
    expect(rotated.key.wrapped.ciphertext).not.toBe(old.key.wrapped.ciphertext);
    expect(rotated.mac).not.toBe(old.mac);
    const filesAfter = await filesUnder(root);
    expect([...filesAfter.keys()].sort()).toEqual([...filesBefore.keys()].sort());
    for (const [path, body] of filesBefore) {
      if (!path.endsWith('/config')) expect(filesAfter.get(path)?.equals(body), path).toBe(true);
    }

    // The pool was emptied: this restore opens the repository anew, through the rewrapped config.
    const restored = await restore(h, before.backup_id as string, 'c', 'v-copy');
    expect(restored).toMatchObject({ status: 'Done' });
    expect(await digest(h.engine, 'v-copy')).toBe(await digest(h.engine, 'v'));
    expect((await backup(h, 'v', 'c')).status).toBe('Done');
    expect((await h.keys.list()).keks.find((k) => k.id === 'team')?.version).toBe(2);
  });

  it('vault: rotation is the operator’s; Ferry rewraps under the newest version and restores across it', async () => {
    vault = await startVaultTransitStandin();
    const root = createVaultClient({ endpoint: vault.endpoint, token: vault.rootToken });
    await root.api.write('transit/keys/backups', { derived: true });
    h = await openHarness({ extra: [new VaultTransitProvider(root)] });
    await h.credential('v', { kek: 'backups', key_provider: 'vault' });
    await volumeWithData(h.engine, 'db');
    const done = await backup(h, 'db', 'v');
    expect(done.status).toBe('Done');
    expect((await config(join(h.objects, 'backups'))).key.wrapped).toMatchObject({ provider: 'vault', kek_version: 1 });

    await root.api.write('transit/keys/backups/rotate', {});
    const result = await h.keys.rotate({ kek: 'backups', key_provider: 'vault' });
    expect(result.version).toBe(2);
    expect(result.repositories).toEqual([expect.objectContaining({ from_version: 1, to_version: 2 })]);
    expect((await config(join(h.objects, 'backups'))).key.wrapped.ciphertext).toMatch(/^vault:v2:/);
    expect(vault.requests.some((r) => r.path === 'transit/rewrap/backups')).toBe(true);

    expect((await restore(h, done.backup_id as string, 'v', 'db-copy')).status).toBe('Done');
    expect(await digest(h.engine, 'db-copy')).toBe(await digest(h.engine, 'db'));
  });

  it('only the repositories of credentials using the KEK (or the one credential asked for)', async () => {
    h = await openHarness();
    await h.keyring.createKek('a');
    await h.keyring.createKek('b');
    await h.credential('ca', { kek: 'a', prefix: 'a' });
    await h.credential('cb', { kek: 'b', prefix: 'b' });
    await h.credential('ca2', { kek: 'a', prefix: 'a2' });
    await volumeWithData(h.engine, 'v');
    for (const c of ['ca', 'cb', 'ca2']) expect((await backup(h, 'v', c)).status).toBe('Done');
    const all = await h.keys.rotate({ kek: 'a' });
    expect(all.repositories.map((r) => r.location).sort()).toEqual([
      `file://${join(h.objects, 'backups', 'a')}`,
      `file://${join(h.objects, 'backups', 'a2')}`,
    ]);
    const one = await h.keys.rotate({ kek: 'a', credential_id: 'ca2' });
    expect(one.repositories).toEqual([expect.objectContaining({ from_version: 2, to_version: 3 })]);
    expect((await config(join(h.objects, 'backups', 'b'))).key.wrapped.kek_version).toBe(1);
  });
});

describe('a rotation that fails changes nothing', () => {
  async function twoRepositories(): Promise<{ a: string; b: string; before: Map<string, Buffer> }> {
    await h.keyring.createKek('team');
    await h.credential('ca', { kek: 'team', prefix: 'a' });
    await h.credential('cb', { kek: 'team', prefix: 'b' });
    await volumeWithData(h.engine, 'v');
    for (const c of ['ca', 'cb']) expect((await backup(h, 'v', c)).status).toBe('Done');
    const a = join(h.objects, 'backups', 'a');
    const b = join(h.objects, 'backups', 'b');
    return { a, b, before: new Map([...(await filesUnder(a)), ...(await filesUnder(b))]) };
  }

  async function expectUnchanged(before: Map<string, Buffer>, dirs: string[]): Promise<void> {
    const after = new Map<string, Buffer>();
    for (const d of dirs) for (const [k, v] of await filesUnder(d)) after.set(k, v);
    expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
    for (const [path, body] of before) expect(after.get(path)?.equals(body), path).toBe(true);
    expect((await h.keyring.listKeks()).find((k) => k.id === 'team')?.version).toBe(1);
  }

  it('a repository that cannot be opened: refused before the KEK gets a version, also when run again', async () => {
    h = await openHarness();
    const { a, b, before } = await twoRepositories();
    const broken = await config(b);
    const altered = { ...broken, mac: '0'.repeat(64) };
    const { writeFile } = await import('node:fs/promises');
    await writeFile(join(b, 'config'), JSON.stringify(altered, null, 2));
    before.set(join(b, 'config'), (await filesUnder(b)).get(join(b, 'config')) as Buffer);
    for (let run = 0; run < 2; run++) {
      const err = await rejection(h.keys.rotate({ kek: 'team' }));
      expect(err.code).toBe('DATA_CORRUPTION');
      expect(err.message).toMatch(/KEK team \(local\) was not rotated, nothing changed/);
      expect(err.message).toContain(`file://${b}`);
      await expectUnchanged(before, [a, b]);
    }
  });

  it('a rewrap that fails after the new version: configs put back, the version taken back, restores as before', async () => {
    let rewraps = 0;
    h = await openHarness({
      wrap: (p) =>
        new Proxy(p, {
          get(target, prop, receiver) {
            if (prop !== 'rewrap') return Reflect.get(target, prop, receiver);
            return async (...args: Parameters<typeof p.rewrap>) => {
              rewraps++;
              if (rewraps === 2) throw new FerryError('UNAVAILABLE', 'the key provider went away mid-rotation');
              return target.rewrap(...args);
            };
          },
        }),
    });
    const { a, b, before } = await twoRepositories();
    const err = await rejection(h.keys.rotate({ kek: 'team' }));
    expect(rewraps).toBe(2);
    expect(err.code).toBe('UNAVAILABLE');
    expect(err.message).toMatch(/Rolled back: every repository and the KEK are as before/);
    await expectUnchanged(before, [a, b]);
    const done = await backup(h, 'v', 'ca');
    expect(done.status).toBe('Done');
    expect((await restore(h, done.backup_id as string, 'ca', 'v-copy')).status).toBe('Done');
    // Run again once the provider answers: both rewrapped, one new version.
    const ok = await h.keys.rotate({ kek: 'team' });
    expect(ok.version).toBe(2);
    expect(ok.repositories).toHaveLength(2);
  });

  it('a credential whose directory does not exist holds no repository: passed over', async () => {
    h = await openHarness();
    await h.keyring.createKek('team');
    await h.keyring.createKek('other');
    await h.credential('ca', { kek: 'team', prefix: 'a' });
    await h.credential('gone', { kek: 'other', prefix: 'gone' });
    await rm(join(h.objects, 'backups', 'gone'), { recursive: true });
    await volumeWithData(h.engine, 'v');
    expect((await backup(h, 'v', 'ca')).status).toBe('Done');
    const rotated = await h.keys.rotate({ kek: 'team' });
    expect(rotated.version).toBe(2);
    expect(rotated.repositories.map((r) => r.location)).toEqual([`file://${join(h.objects, 'backups', 'a')}`]);
  });
});

describe('crypto-shredding', () => {
  it('two teams on one bucket: destroying team-a makes its backups unreadable; team-b still restores', async () => {
    h = await openHarness();
    await h.keyring.createKek('team-a');
    await h.keyring.createKek('team-b');
    await h.credential('cred-a', { bucket: 'shared', prefix: 'team-a', kek: 'team-a' });
    await h.credential('cred-b', { bucket: 'shared', prefix: 'team-b', kek: 'team-b' });
    await volumeWithData(h.engine, 'vol-a');
    await volumeWithData(h.engine, 'vol-b');
    const a = await backup(h, 'vol-a', 'cred-a');
    const b = await backup(h, 'vol-b', 'cred-b');
    expect([a.status, b.status]).toEqual(['Done', 'Done']);
    // Both repositories are cached open now; destroying must not leave team-a's secret usable here.
    expect(h.backups.jobs.repositories.cached).toBe(2);

    const destroyed = await h.keys.destroy({ kek: 'team-a' });
    expect(destroyed).toMatchObject({ kek: { id: 'team-a', destroyed: true }, credentials: ['cred-a'] });
    expect(h.backups.jobs.repositories.cached).toBe(0);

    const failed = await restore(h, a.backup_id as string, 'cred-a', 'vol-a-copy');
    expect(failed.status).toBe('Failed');
    expect(failed.info.join(' ')).toMatch(/KEK "team-a" was destroyed/);
    expect(failed.info.join(' ')).toMatch(/backups in .*team-a are unreadable/);
    const err = await rejection(h.backups.inspect('cred-a', a.backup_id as string));
    expect(err.code).toBe('PERMISSION_DENIED');
    expect(err.message).toMatch(/unreadable/);
    expect(err.message).toMatch(/destroyed/);

    const ok = await restore(h, b.backup_id as string, 'cred-b', 'vol-b-copy');
    expect(ok.status).toBe('Done');
    expect(await digest(h.engine, 'vol-b-copy')).toBe(await digest(h.engine, 'vol-b'));
  });

  it('refuses to destroy the KEK that seals credential secrets; NOT_FOUND for an unknown KEK', async () => {
    h = await openHarness();
    expect((await rejection(h.keys.destroy({ kek: 'default' }))).code).toBe('FAILED_PRECONDITION');
    expect((await rejection(h.keys.destroy({ kek: 'nope' }))).code).toBe('NOT_FOUND');
  });
});

describe('per-volume KEK override (ferry.io/kek)', () => {
  it('backs up into a kek-<name>/ sub-repository, lists, restores and rotates it', async () => {
    h = await openHarness();
    await h.keyring.createKek('secret-app');
    await h.credential('c', { prefix: 'cluster' });
    await volumeWithData(h.engine, 'plain');
    await volumeWithData(h.engine, 'special', 4 * 1024 * 1024, { 'ferry.io/kek': 'secret-app' });
    const p = await backup(h, 'plain', 'c');
    const s = await backup(h, 'special', 'c');
    expect([p.status, s.status]).toEqual(['Done', 'Done']);
    const sub = join(h.objects, 'backups', 'cluster', 'kek-secret-app');
    expect((await config(sub)).key.wrapped).toMatchObject({ provider: 'local', kek_id: 'secret-app' });
    expect((await config(join(h.objects, 'backups', 'cluster'))).key.wrapped.kek_id).toBe('default');

    const listed = await h.backups.enumerate({ credential_id: 'c' });
    expect(listed.backups.map((r) => r.volume_name).sort()).toEqual(['plain', 'special']);
    await h.reopenJobs();
    expect((await restore(h, s.backup_id as string, 'c', 'special-copy')).status).toBe('Done');
    expect(await digest(h.engine, 'special-copy')).toBe(await digest(h.engine, 'special'));

    const rotated = await h.keys.rotate({ kek: 'secret-app' });
    expect(rotated.repositories).toEqual([expect.objectContaining({ location: `file://${sub}`, to_version: 2 })]);
  });

  it('a bad label fails the backup request with INVALID_ARGUMENT', async () => {
    h = await openHarness();
    await h.credential('c', {});
    await volumeWithData(h.engine, 'v', 4 * 1024 * 1024, { 'ferry.io/kek': 'x', 'ferry.io/key-provider': 'hsm' });
    const err = await rejection(h.backups.jobs.submitBackup({ volume_id: 'v', credential_id: 'c' }));
    expect(err.code).toBe('INVALID_ARGUMENT');
  });
});
