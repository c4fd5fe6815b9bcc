import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { MemoryStore } from './memory-store.js';
import { ClusterSecrets, SECRETS_PREFIX } from './sealed.js';

describe('ClusterSecrets', () => {
  it('seals values in the store and opens them on another node with the same cluster secret', async () => {
    const store = new MemoryStore();
    const secret = randomBytes(32);
    const a = new ClusterSecrets(store, secret);
    await a.put('auth/signing', Buffer.from('s3cr3t-signing-key'));
    const raw = JSON.stringify(await store.get(`${SECRETS_PREFIX}auth/signing`));
    expect(raw).not.toContain('s3cr3t');
    const b = new ClusterSecrets(store, Buffer.from(secret));
    expect((await b.get('auth/signing'))?.toString()).toBe('s3cr3t-signing-key');
    expect(await b.names('auth/')).toEqual(['auth/signing']);
    await b.delete('auth/signing');
    expect(await a.get('auth/signing')).toBeUndefined();
  });

  it('refuses a wrong cluster secret and a value moved to another name (DATA_CORRUPTION)', async () => {
    const store = new MemoryStore();
    const a = new ClusterSecrets(store, randomBytes(32));
    await a.put('x', Buffer.from('one'));
    await expect(new ClusterSecrets(store, randomBytes(32)).get('x')).rejects.toMatchObject({
      code: 'DATA_CORRUPTION',
    });
    await store.put(`${SECRETS_PREFIX}y`, await store.get(`${SECRETS_PREFIX}x`));
    await expect(a.get('y')).rejects.toMatchObject({ code: 'DATA_CORRUPTION' });
    expect(() => new ClusterSecrets(store, randomBytes(16))).toThrow(/at least 32 bytes/);
  });

  it('obtain: concurrent first callers on two nodes end with one value', async () => {
    const store = new MemoryStore();
    const secret = randomBytes(32);
    const nodes = [new ClusterSecrets(store, secret), new ClusterSecrets(store, secret)];
    const got = await Promise.all(nodes.map((n) => n.obtain('ca/key', () => randomBytes(32))));
    expect(got[0]?.equals(got[1] as Buffer)).toBe(true);
    expect((await nodes[0]?.obtain('ca/key', () => randomBytes(32)))?.equals(got[0] as Buffer)).toBe(true);
  });
});
