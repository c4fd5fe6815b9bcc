/**
 * The Vault Transit provider through the real node-vault client against test/support/vault-transit-standin.ts, a
 * protocol-level STAND-IN written from Vault's API docs (no Vault server can be installed here).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { rejection } from '../test/support/rejection.js';
import { startVaultTransitStandin, type VaultTransitStandin } from '../test/support/vault-transit-standin.js';
import { describeKeyProviderConformance } from './conformance.js';
import { createVaultClient, type VaultClient, type VaultClientOptions } from './vault-client.js';
import { VaultTransitProvider } from './vault-transit.js';

const context = { repository: 'repo-1', tenant: 'acme' };
const standins: VaultTransitStandin[] = [];

async function standin(now?: () => number): Promise<VaultTransitStandin> {
  const s = await startVaultTransitStandin(now === undefined ? {} : { now });
  standins.push(s);
  return s;
}

/** A root client of `namespace` for setting keys up, as an operator would. */
function admin(s: VaultTransitStandin, namespace = ''): VaultClient {
  const token = namespace === '' ? s.rootToken : s.issueToken({ ttl: 0, namespace });
  return createVaultClient({ endpoint: s.endpoint, token, namespace });
}

function provider(s: VaultTransitStandin, options: Partial<VaultClientOptions>): VaultTransitProvider {
  return new VaultTransitProvider(createVaultClient({ endpoint: s.endpoint, ...options }));
}

function count(s: VaultTransitStandin, path: string): number {
  return s.requests.filter((r) => r.path === path).length;
}

afterEach(async () => {
  for (const s of standins.splice(0)) await s.close();
});

describeKeyProviderConformance('vault transit (stand-in), token with a transit/* policy', async () => {
  const s = await standin();
  const root = admin(s);
  await root.api.write('transit/keys/backups', { derived: true });
  const token = s.issueToken({ ttl: 3600, renewable: true, keys: ['*'] });
  return {
    provider: provider(s, { token }),
    kek: 'backups',
    rotate: async () => void (await root.api.write('transit/keys/backups/rotate', {})),
    close: () => s.close(),
  };
});

describeKeyProviderConformance('vault transit (stand-in), AppRole in a namespace', async () => {
  const s = await standin();
  const root = admin(s, 'team-a');
  await root.api.write('transit/keys/backups', { derived: true });
  s.addAppRole({
    roleId: 'ferry',
    secretId: 's3cret',
    token: { ttl: 600, renewable: true, namespace: 'team-a', keys: ['*'] },
  });
  return {
    provider: provider(s, { roleId: 'ferry', secretId: 's3cret', namespace: 'team-a' }),
    kek: 'backups',
    rotate: async () => void (await root.api.write('transit/keys/backups/rotate', {})),
    close: () => s.close(),
  };
});

describe('VaultTransitProvider (against the Vault stand-in)', () => {
  it('AppRole: logs in once, renews the token when less than a third of its TTL is left, logs in again after expiry', async () => {
    let now = Date.parse('2030-01-01T00:00:00Z');
    const s = await standin(() => now);
    await admin(s).api.write('transit/keys/backups', { derived: true });
    s.addAppRole({ roleId: 'ferry', secretId: 's3cret', token: { ttl: 60, renewable: true, keys: ['backups'] } });
    const vault = provider(s, { roleId: 'ferry', secretId: 's3cret', now: () => now });

    const wrapped = await vault.wrap('backups', Buffer.from('dek'), context);
    expect([count(s, 'auth/approle/login'), count(s, 'auth/token/renew-self')]).toEqual([1, 0]);
    now += 30_000; // 30 s of 60 left: no renewal yet
    await vault.describeKek('backups');
    expect(count(s, 'auth/token/renew-self')).toBe(0);
    now += 15_000; // 15 s left, under a third
    expect(await vault.unwrap(wrapped, context)).toEqual(Buffer.from('dek'));
    expect([count(s, 'auth/approle/login'), count(s, 'auth/token/renew-self')]).toEqual([1, 1]);
    now += 50_000; // renewed to 60 s at the last call: 10 s left, renew again
    await vault.describeKek('backups');
    expect(count(s, 'auth/token/renew-self')).toBe(2);
    now += 120_000; // expired while idle: a renewal would be refused, so log in again
    expect(await vault.unwrap(wrapped, context)).toEqual(Buffer.from('dek'));
    expect([count(s, 'auth/approle/login'), count(s, 'auth/token/renew-self')]).toEqual([2, 2]);
  });

  it('a given token: looked up once, renewed near the end of its TTL; a root token (no TTL) is never renewed', async () => {
    let now = Date.parse('2030-01-01T00:00:00Z');
    const s = await standin(() => now);
    await admin(s).api.write('transit/keys/backups', { derived: true });
    const vault = provider(s, { token: s.issueToken({ ttl: 90, renewable: true, keys: ['backups'] }), now: () => now });
    await vault.describeKek('backups');
    now += 70_000;
    await vault.describeKek('backups');
    expect([count(s, 'auth/token/lookup-self'), count(s, 'auth/token/renew-self')]).toEqual([1, 1]);

    const rootVault = provider(s, { token: s.rootToken, now: () => now });
    await rootVault.describeKek('backups');
    now += 10 * 365 * 86_400_000;
    await rootVault.describeKek('backups');
    expect([count(s, 'auth/token/lookup-self'), count(s, 'auth/token/renew-self')]).toEqual([2, 1]);
  });

  it('sends X-Vault-Namespace on every request; keys and tokens of a namespace are not visible outside it', async () => {
    const s = await standin();
    await admin(s, 'team-a').api.write('transit/keys/backups', { derived: true });
    s.addAppRole({ roleId: 'ferry', secretId: 's3cret', token: { ttl: 600, namespace: 'team-a', keys: ['*'] } });
    const before = s.requests.length;
    const vault = provider(s, { roleId: 'ferry', secretId: 's3cret', namespace: '/team-a/' });
    const wrapped = await vault.wrap('backups', Buffer.from('dek'), context);
    expect(await vault.unwrap(wrapped, context)).toEqual(Buffer.from('dek'));
    const sent = s.requests.slice(before);
    expect(sent.map((r) => r.path)).toContain('auth/approle/login');
    expect(sent.map((r) => r.namespace)).toEqual(sent.map(() => 'team-a'));

    const rootNamespace = provider(s, { token: s.rootToken });
    expect((await rejection(rootNamespace.describeKek('backups'))).code).toBe('NOT_FOUND');
    const teamToken = s.issueToken({ ttl: 0, namespace: 'team-a' });
    expect((await rejection(provider(s, { token: teamToken }).describeKek('backups'))).code).toBe('UNAUTHENTICATED');
  });

  it('a wrong token or AppRole secret is UNAUTHENTICATED; a policy without the key is PERMISSION_DENIED', async () => {
    const s = await standin();
    await admin(s).api.write('transit/keys/backups', { derived: true });
    s.addAppRole({ roleId: 'ferry', secretId: 's3cret', token: { ttl: 600, keys: ['backups'] } });

    const badToken = await rejection(provider(s, { token: 'hvs.not-a-token' }).wrap('backups', Buffer.from('x'), {}));
    expect(badToken.code).toBe('UNAUTHENTICATED');
    expect(badToken.message).toContain(s.endpoint);
    const badSecret = await rejection(
      provider(s, { roleId: 'ferry', secretId: 'wrong-secret' }).describeKek('backups'),
    );
    expect(badSecret.code).toBe('UNAUTHENTICATED');
    expect(badSecret.message).toMatch(/AppRole login/);
    expect(`${badSecret.message} ${String(badSecret.cause)}`).not.toContain('wrong-secret');

    const other = provider(s, { token: s.issueToken({ ttl: 600, keys: ['other-*'] }) });
    const denied = await rejection(other.wrap('backups', Buffer.from('x'), context));
    expect(denied.code).toBe('PERMISSION_DENIED');
    expect(denied.message).toContain('Vault denied access to transit key "backups"');
    expect(denied.message).toContain('check the policy');
  });

  it('Vault stopped or hung: UNAVAILABLE naming Vault and its address, without waiting long', async () => {
    const s = await standin();
    await admin(s).api.write('transit/keys/backups', { derived: true });
    const vault = provider(s, { token: s.rootToken, timeoutMs: 300 });
    await vault.describeKek('backups');

    s.stall(true);
    const hung = await rejection(vault.describeKek('backups'));
    expect(hung.code).toBe('UNAVAILABLE');
    expect(hung.message).toContain(`Vault at ${s.endpoint} is unreachable`);

    await s.close();
    const started = Date.now();
    const stopped = await rejection(vault.wrap('backups', Buffer.from('x'), context));
    expect(stopped.code).toBe('UNAVAILABLE');
    expect(stopped.message).toBe(
      `Vault at ${s.endpoint} is unreachable (ECONNREFUSED): check the address and that Vault is running`,
    );
    expect(Date.now() - started).toBeLessThan(5_000); // no retry loop: a refused connection fails at once
  });

  it('crypto-shredding: retired versions are PERMISSION_DENIED; a deleted key is NOT_FOUND saying data is unreadable', async () => {
    const s = await standin();
    const root = admin(s).api;
    await root.write('transit/keys/backups', { derived: true });
    const vault = provider(s, { token: s.rootToken });
    const old = await vault.wrap('backups', Buffer.from('old dek'), context);
    await root.write('transit/keys/backups/rotate', {});
    const current = await vault.wrap('backups', Buffer.from('new dek'), context);
    await root.write('transit/keys/backups/config', { min_decryption_version: 2 });
    await root.write('transit/keys/backups/trim', { min_available_version: 2 });

    for (const attempt of [vault.unwrap(old, context), vault.rewrap(old, context)]) {
      const err = await rejection(attempt);
      expect(err.code).toBe('PERMISSION_DENIED');
      expect(err.message).toMatch(/version 1 of transit key "backups" is retired .*unreadable/);
    }
    expect(await vault.unwrap(current, context)).toEqual(Buffer.from('new dek'));

    await root.write('transit/keys/backups/config', { deletion_allowed: true });
    await root.delete('transit/keys/backups');
    const gone = await rejection(vault.unwrap(current, context));
    expect(gone.code).toBe('NOT_FOUND');
    expect(gone.message).toMatch(
      /no transit key "backups".*if it was deleted, everything wrapped under it is unreadable/,
    );
  });

  it('a wrong context or altered ciphertext is DATA_CORRUPTION from Vault itself', async () => {
    const s = await standin();
    await admin(s).api.write('transit/keys/backups', { derived: true });
    const vault = provider(s, { token: s.rootToken });
    const wrapped = await vault.wrap('backups', Buffer.alloc(32, 1), context);
    expect(wrapped.ciphertext).toMatch(/^vault:v1:/);
    expect((await rejection(vault.unwrap(wrapped, { ...context, tenant: 'evil' }))).code).toBe('DATA_CORRUPTION');

    const body = wrapped.ciphertext.slice('vault:v1:'.length);
    const flipped = `vault:v1:${body[0] === 'A' ? 'B' : 'A'}${body.slice(1)}`;
    expect((await rejection(vault.unwrap({ ...wrapped, ciphertext: flipped }, context))).code).toBe('DATA_CORRUPTION');
    const relabelled = { ...wrapped, kek_version: 2 };
    expect((await rejection(vault.unwrap(relabelled, context))).code).toBe('DATA_CORRUPTION');
    const foreign = await rejection(vault.unwrap({ ...wrapped, provider: 'aws-kms' }, context));
    expect(foreign.code).toBe('FAILED_PRECONDITION');
  });

  it('never creates a key: a wrong name is NOT_FOUND even for a token Vault would let upsert; non-derived keys are refused', async () => {
    const s = await standin();
    const root = admin(s).api;
    const vault = provider(s, { token: s.rootToken });
    expect((await rejection(vault.wrap('backpus', Buffer.from('x'), context))).code).toBe('NOT_FOUND');
    await expect(root.read('transit/keys/backpus')).rejects.toMatchObject({ response: { statusCode: 404 } });
    expect(s.requests.some((r) => r.path === 'transit/encrypt/backpus')).toBe(false);

    await root.write('transit/keys/plain', {});
    const err = await rejection(vault.generateDataKey('plain', context));
    expect(err.code).toBe('FAILED_PRECONDITION');
    expect(err.message).toContain('derived=true');
  });
});
