/**
 * The cluster keyring over the real ClusterSecrets and a real in-memory store shared by several "nodes": the key
 * provider conformance suite, then what only a shared keyring does (a KEK made on one node works on another,
 * rotations on two nodes at once, a destroy seen everywhere at once) and what the store holds (sealed values only).
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { isFerryError } from '../common/index.js';
import { memorySecretsCluster } from '../test/support/cluster-secrets.js';
import { ClusterKeyring } from './cluster-keyring.js';
import { describeKeyProviderConformance } from './conformance.js';

const context = { volume: 'vol-1' };

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
  } catch (err: unknown) {
    return isFerryError(err) ? err.code : String(err);
  }
  return 'no rejection';
}

describeKeyProviderConformance('cluster keyring (ClusterSecrets over MemoryStore)', async () => {
  const cluster = memorySecretsCluster();
  const provider = new ClusterKeyring(cluster.node().secrets);
  await provider.createKek('backups');
  return { provider, kek: 'backups', rotate: async () => void (await provider.rotateKek('backups')) };
});

describe('ClusterKeyring on two nodes of one cluster', () => {
  it('a KEK created on one node wraps on it and unwraps on the other, and rotates from either', async () => {
    const cluster = memorySecretsCluster();
    const a = new ClusterKeyring(cluster.node().secrets);
    const b = new ClusterKeyring(cluster.node().secrets);
    const created = await a.createKek('volumes');
    expect(created).toMatchObject({ id: 'volumes', version: 1, destroyed: false });
    expect(await codeOf(b.createKek('volumes'))).toBe('ALREADY_EXISTS');
    const secret = randomBytes(32);
    const wrapped = await a.wrap('volumes', secret, context);
    expect(await b.unwrap(wrapped, context)).toEqual(secret);
    expect((await b.rotateKek('volumes')).version).toBe(2);
    const newer = await a.wrap('volumes', secret, context);
    expect(newer.kek_version).toBe(2);
    expect(await b.unwrap(newer, context)).toEqual(secret);
    expect(await b.listKeks()).toEqual([{ id: 'volumes', version: 2, created: created.created, destroyed: false }]);
  });

  it('rotations on two nodes at once each get a version of their own; both unwrap everywhere', async () => {
    const cluster = memorySecretsCluster();
    const a = new ClusterKeyring(cluster.node().secrets);
    const b = new ClusterKeyring(cluster.node().secrets);
    await a.createKek('k');
    const [ra, rb] = await Promise.all([a.rotateKek('k'), b.rotateKek('k')]);
    expect([ra.version, rb.version].sort()).toEqual([2, 3]);
    const secret = Buffer.from('wrapped under the newest');
    const wrapped = await b.wrap('k', secret, context);
    expect(wrapped.kek_version).toBe(3);
    expect(await a.unwrap(wrapped, context)).toEqual(secret);
    // A rotation taken back (KeyService's roll-back) leaves the one before it the newest, on every node.
    expect((await a.unrotateKek('k', 3)).version).toBe(2);
    expect((await b.describeKek('k')).version).toBe(2);
    expect(await codeOf(b.unwrap(wrapped, context))).toBe('NOT_FOUND');
    expect(await codeOf(b.unrotateKek('k', 1))).toBe('FAILED_PRECONDITION');
  });

  it('a KEK destroyed on one node stops unwrapping on the other at once; its name stays taken', async () => {
    const cluster = memorySecretsCluster();
    const a = new ClusterKeyring(cluster.node().secrets);
    const b = new ClusterKeyring(cluster.node().secrets);
    await a.createKek('shred-me');
    await a.rotateKek('shred-me');
    const wrapped = await b.wrap('shred-me', Buffer.from('data key'), context);
    expect(b.destroyedAt('shred-me')).toBeUndefined();
    const c = new ClusterKeyring(cluster.node().secrets);
    await a.destroyKek('shred-me');
    expect(a.destroyedAt('shred-me')).toBeDefined();
    await c.refresh(); // a node that does not touch the KEK learns of the destroy from a refresh
    expect(c.destroyedAt('shred-me')).toBe(a.destroyedAt('shred-me'));
    expect(await codeOf(b.unwrap(wrapped, context))).toBe('PERMISSION_DENIED');
    expect(b.destroyedAt('shred-me')).toBe(a.destroyedAt('shred-me'));
    expect(await codeOf(b.wrap('shred-me', Buffer.from('x'), context))).toBe('PERMISSION_DENIED');
    expect(await codeOf(b.createKek('shred-me'))).toBe('ALREADY_EXISTS');
    const [listed] = await b.listKeks();
    expect(listed).toMatchObject({ id: 'shred-me', version: 2, destroyed: true });
    // No version's sealed bytes are left in the store, only the mark.
    expect(await cluster.node().secrets.names('keyring/shred-me/')).toEqual(['keyring/shred-me/destroyed']);
    await a.destroyKek('shred-me'); // again: nothing to do
    expect(await codeOf(a.destroyKek('never-made'))).toBe('NOT_FOUND');
  });

  it('the store holds sealed values only; another cluster secret opens none of them', async () => {
    const cluster = memorySecretsCluster();
    const a = new ClusterKeyring(cluster.node().secrets);
    await a.createKek('k');
    const wrapped = await a.wrap('k', Buffer.from('s'), context);
    const { store, secrets } = cluster.node();
    const entries = await store.list<Record<string, unknown>>('/ferry/secrets/keyring/');
    expect(entries.map((e) => e.key)).toEqual(['/ferry/secrets/keyring/k/1']);
    expect(Object.keys(entries[0]?.value ?? {})).toEqual(['sealed']);
    const opened = JSON.parse(((await secrets.get('keyring/k/1')) ?? Buffer.alloc(0)).toString()) as { key: string };
    expect(Buffer.from(opened.key, 'base64')).toHaveLength(32);
    const raw = JSON.stringify(entries);
    expect(raw).not.toContain(opened.key);
    expect(raw).not.toContain(Buffer.from(opened.key, 'base64').toString('hex'));
    const stranger = new ClusterKeyring(cluster.node(randomBytes(32)).secrets);
    expect(await codeOf(stranger.unwrap(wrapped, context))).toBe('DATA_CORRUPTION');
  });

  it('refuses calls once closed', async () => {
    const keyring = new ClusterKeyring(memorySecretsCluster().node().secrets);
    await keyring.close();
    expect(await codeOf(keyring.listKeks())).toBe('FAILED_PRECONDITION');
  });
});
