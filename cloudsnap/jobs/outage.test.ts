/**
 * Key-provider outages and key hygiene: a job whose provider is unreachable retries with backoff (tiny delays here)
 * and ends Failed with UNAVAILABLE naming the provider; a provider that comes back mid-retry lets the job finish; a
 * refusal (destroyed KEK) is not retried; and no master secret ever lands in the object store (or anywhere in the
 * node's data directory) in raw, hex or base64 form.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FerryError } from '../../common/index.js';
import {
  createVaultClient,
  type DataKey,
  type EncryptionContext,
  type KekInfo,
  type KeyProvider,
  VaultTransitProvider,
  type WrappedKey,
} from '../../kms/index.js';
import {
  backup,
  filesUnder,
  type KeyHarness,
  openHarness,
  restore,
  volumeWithData,
} from '../../test/support/key-harness.js';
import { startVaultTransitStandin, type VaultTransitStandin } from '../../test/support/vault-transit-standin.js';
import type { RepoConfig } from '../repo/repository.js';

let h: KeyHarness | undefined;
let vault: VaultTransitStandin | undefined;

afterEach(async () => {
  await h?.close();
  await vault?.close();
  h = undefined;
  vault = undefined;
});

async function vaultHarness(): Promise<{ h: KeyHarness; vault: VaultTransitStandin }> {
  const s = await startVaultTransitStandin();
  const root = createVaultClient({ endpoint: s.endpoint, token: s.rootToken, timeoutMs: 2000 });
  await root.api.write('transit/keys/backups', { derived: true });
  const harness = await openHarness({ extra: [new VaultTransitProvider(root)] });
  await harness.credential('v', { kek: 'backups', key_provider: 'vault' });
  return { h: harness, vault: s };
}

/** A provider that fails with UNAVAILABLE while `down` is above zero (one less per call). */
class FlakyProvider implements KeyProvider {
  down = 0;
  constructor(private readonly inner: KeyProvider) {}
  get name(): string {
    return this.inner.name;
  }
  private gate(): void {
    if (this.down > 0) {
      this.down--;
      throw new FerryError('UNAVAILABLE', `${this.inner.name} is down (test)`);
    }
  }
  async generateDataKey(kek: string, context: EncryptionContext): Promise<DataKey> {
    this.gate();
    return this.inner.generateDataKey(kek, context);
  }
  async wrap(kek: string, plaintext: Buffer, context: EncryptionContext): Promise<WrappedKey> {
    this.gate();
    return this.inner.wrap(kek, plaintext, context);
  }
  async unwrap(wrapped: WrappedKey, context: EncryptionContext): Promise<Buffer> {
    this.gate();
    return this.inner.unwrap(wrapped, context);
  }
  async rewrap(wrapped: WrappedKey, context: EncryptionContext): Promise<WrappedKey> {
    this.gate();
    return this.inner.rewrap(wrapped, context);
  }
  async describeKek(kek: string): Promise<KekInfo> {
    return this.inner.describeKek(kek);
  }
}

describe('provider outage', () => {
  it('Vault unreachable: restore and backup retry 3 times, then end Failed with UNAVAILABLE naming Vault', async () => {
    ({ h, vault } = await vaultHarness());
    await volumeWithData(h.engine, 'db');
    const done = await backup(h, 'db', 'v');
    expect(done.status).toBe('Done');
    await h.reopenJobs();
    const counted = h.counting.get('vault');
    counted?.reset();
    await vault.close();

    const failed = await restore(h, done.backup_id as string, 'v', 'db-copy');
    expect(failed.status).toBe('Failed');
    expect(failed.info).toHaveLength(1);
    expect(failed.info[0]).toMatch(
      /^key provider "vault" is unavailable, so the repository at file:\/\/.* cannot be opened/,
    );
    expect(failed.info[0]).toContain(`Vault at ${vault.endpoint} is unreachable`);
    // The first attempt and three retries, each one unwrap.
    expect(counted?.calls.unwrap).toBe(4);
    await expect(h.engine.inspectVolume('db-copy')).rejects.toMatchObject({ code: 'NOT_FOUND' });

    const again = await backup(h, 'db', 'v');
    expect(again.status).toBe('Failed');
    expect(again.info[0]).toContain('key provider "vault" is unavailable');
    expect(counted?.calls.unwrap).toBe(8);
    const err = await h.backups.inspect('v', done.backup_id as string).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'UNAVAILABLE' });
  });

  it('a provider back before the retries run out: the job ends Done', async () => {
    let flaky: FlakyProvider | undefined;
    h = await openHarness({
      retry: { retries: 3, baseDelayMs: 5 },
      wrap: (p) => {
        flaky = new FlakyProvider(p);
        return flaky;
      },
    });
    await h.credential('c', {});
    await volumeWithData(h.engine, 'v');
    expect((await backup(h, 'v', 'c')).status).toBe('Done');
    await h.reopenJobs();
    if (flaky === undefined) throw new Error('no provider was wrapped');
    flaky.down = 2;
    const local = h.counting.get('local');
    local?.reset();
    const end = await backup(h, 'v', 'c');
    expect(end).toMatchObject({ status: 'Done', info: [] });
    expect(local?.calls.unwrap).toBe(3);
    expect(flaky.down).toBe(0);
  });

  it('a destroyed KEK is a refusal, not an outage: no retry', async () => {
    h = await openHarness();
    await h.keyring.createKek('gone');
    await h.credential('c', { kek: 'gone' });
    await volumeWithData(h.engine, 'v');
    const done = await backup(h, 'v', 'c');
    await h.keys.destroy({ kek: 'gone' });
    const local = h.counting.get('local');
    local?.reset();
    const failed = await restore(h, done.backup_id as string, 'c', 'v-copy');
    expect(failed.status).toBe('Failed');
    expect(local?.calls.unwrap).toBe(1);
  });
});

describe('key hygiene', () => {
  it('no master secret in any object of the repositories, or anywhere in the data directory', async () => {
    ({ h, vault } = await vaultHarness());
    await h.keyring.createKek('team');
    await h.credential('l', { kek: 'team', prefix: 'local' });
    await volumeWithData(h.engine, 'a');
    await volumeWithData(h.engine, 'b', 4 * 1024 * 1024, { 'ferry.io/kek': 'default' });
    for (const [volume, cred] of [
      ['a', 'l'],
      ['a', 'v'],
      ['b', 'l'],
    ] as const) {
      expect((await backup(h, volume, cred)).status).toBe('Done');
    }
    await h.keys.rotate({ kek: 'team' });

    const files = await filesUnder(h.dataDir);
    const configs = [...files].filter(([path]) => path.endsWith('/config') && path.includes('objects'));
    expect(configs.map(([path]) => path.slice(h?.objects.length)).sort()).toEqual([
      '/backups/config',
      '/backups/local/config',
      '/backups/local/kek-default/config',
    ]);
    for (const [path, raw] of configs) {
      const config = JSON.parse(raw.toString('utf8')) as RepoConfig;
      const master = await h.providers.get(config.key.wrapped.provider).unwrap(config.key.wrapped, config.key.context);
      expect(master).toHaveLength(32);
      const forms = [
        master,
        ...['base64', 'base64url', 'hex'].map((e) => Buffer.from(master.toString(e as BufferEncoding))),
      ];
      for (const [file, body] of files) {
        for (const form of forms) expect(body.includes(form), `${path}'s master secret found in ${file}`).toBe(false);
      }
    }
    expect(files.size).toBeGreaterThan(10);
    expect(
      [...files.keys()].some((f) => f.startsWith(join(h?.objects ?? '', 'backups', 'local', 'kek-default', 'packs'))),
    ).toBe(true);
  });
});
