/** PrefixedStore over the directory store passes the shared conformance suite, and stays inside its prefix. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeObjectStoreConformance } from './conformance.js';
import { DirectoryStore } from './directory.js';
import { PrefixedStore } from './prefixed.js';

describeObjectStoreConformance(
  'PrefixedStore over DirectoryStore',
  async () => {
    const root = await mkdtemp(join(tmpdir(), 'ferry-prefixed-'));
    // Something beside the prefix, which the prefixed store must never list or touch.
    await writeFile(join(root, 'outside'), 'x');
    return {
      store: new PrefixedStore(new DirectoryStore(root), 'kek-team'),
      missingBucket: new PrefixedStore(new DirectoryStore(join(root, 'does-not-exist')), 'kek-team'),
      // The missing thing is the directory under the prefix.
      missingBucketName: join(root, 'does-not-exist'),
      cleanup: () => rm(root, { recursive: true, force: true }),
    };
  },
  { credentialed: false },
);

describe('PrefixedStore', () => {
  it('writes under the prefix, lists without it, and names its location', async () => {
    const root = await mkdtemp(join(tmpdir(), 'ferry-prefixed-'));
    try {
      const inner = new DirectoryStore(root);
      const store = new PrefixedStore(inner, 'kek-a');
      await store.put('config', Buffer.from('c'));
      await inner.put('config', Buffer.from('root'));
      expect((await inner.get('kek-a/config')).toString()).toBe('c');
      expect((await store.list('')).objects.map((o) => o.key)).toEqual(['config']);
      expect((await store.head('config'))?.key).toBe('config');
      expect(store.location).toBe(`${inner.location.replace(/\/+$/, '')}/kek-a`);
      expect(() => new PrefixedStore(inner, '../x')).toThrow(/prefix/);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
