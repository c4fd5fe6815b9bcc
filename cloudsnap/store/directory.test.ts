import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isFerryError } from '../../common/index.js';
import { DirectoryStore } from './directory.js';

let root: string;
let store: DirectoryStore;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'ferry-dir-'));
  store = new DirectoryStore(root);
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function keysOf(prefix: string, maxKeys: number): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await store.list(prefix, { maxKeys, continuationToken: token });
    expect(page.objects.length).toBeLessThanOrEqual(maxKeys);
    keys.push(...page.objects.map((o) => o.key));
    token = page.continuationToken;
  } while (token !== undefined);
  return keys;
}

describe('DirectoryStore specifics', () => {
  it('lists across nested directories in S3 byte order, resuming inside and after subtrees', async () => {
    const keys = ['a-b', 'a/c', 'a/d/e', 'a/d/f', 'a0', 'b', 'z/z/z', 'é']; // 'é' is 0xc3 0xa9: after 'z'
    for (const key of keys) await store.put(key, Buffer.from(key));
    for (const maxKeys of [1, 2, 3, 1000]) expect(await keysOf('', maxKeys)).toEqual(keys);
    expect(await keysOf('a/d', 1)).toEqual(['a/d/e', 'a/d/f']);
  });

  it('never lists or leaves temp files, and keeps unrelated files out of the way', async () => {
    await store.put('x/y', Buffer.from('1'));
    await writeFile(join(root, 'x', 'y\\tmp-leftover'), 'partial');
    expect(await keysOf('', 10)).toEqual(['x/y']);
    expect((await readdir(join(root, 'x'))).sort()).toEqual(['y', 'y\\tmp-leftover']);
  });

  it('removes empty parent directories on delete, but not the root', async () => {
    await store.put('p/q/r/s', Buffer.from('1'));
    await store.put('p/keep', Buffer.from('1'));
    await store.delete(['p/q/r/s']);
    expect(await readdir(join(root, 'p'))).toEqual(['keep']);
    await store.delete(['p/keep']);
    expect(await readdir(root)).toEqual([]);
  });

  it('rejects a key that is also a directory of keys with FAILED_PRECONDITION', async () => {
    await store.put('a/b', Buffer.from('1'));
    const err = await store.put('a', Buffer.from('2')).catch((e: unknown) => e);
    expect(isFerryError(err, 'FAILED_PRECONDITION')).toBe(true);
    const err2 = await store.put('a/b/c', Buffer.from('3')).catch((e: unknown) => e);
    expect(isFerryError(err2, 'FAILED_PRECONDITION')).toBe(true);
    expect(await store.head('a')).toBeUndefined();
    await expect(store.get('a')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    await expect(store.get('a', { range: { offset: 0, length: 1 } })).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('reads ranges without looking up the size first, yet names a range past the end as one', async () => {
    await store.put('p', Buffer.from('0123456789'));
    expect((await store.get('p', { range: { offset: 8, length: 2 } })).toString()).toBe('89');
    await expect(store.get('p', { range: { offset: 8, length: 3 } })).rejects.toThrow(/past the end.*10 bytes/);
    await expect(store.get('q', { range: { offset: 0, length: 1 } })).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('says how to fix a missing root, and never creates it', async () => {
    const missing = new DirectoryStore(join(root, 'nope'));
    await expect(missing.put('k', Buffer.from('1'))).rejects.toMatchObject({
      code: 'NOT_FOUND',
      message: expect.stringContaining('does not exist: create it or fix the path'),
    });
    expect(await readdir(root)).toEqual([]);
  });

  it('under a base that must exist, is empty until its first put makes the prefix directories', async () => {
    // A credential's path/bucket exists; its prefix (team-a/db) is made by the first write, as by S3's keys.
    const prefixed = new DirectoryStore(join(root, 'team-a', 'db'), { mustExist: root });
    expect((await prefixed.list('')).objects).toEqual([]);
    expect(await prefixed.head('config')).toBeUndefined();
    await expect(prefixed.get('config')).rejects.toMatchObject({
      code: 'NOT_FOUND',
      message: expect.stringContaining('config does not exist'),
    });
    expect(await readdir(root)).toEqual([]);
    await prefixed.put('packs/ab/1', Buffer.from('x'));
    expect((await prefixed.get('packs/ab/1')).toString()).toBe('x');
    expect(await readdir(join(root, 'team-a', 'db'))).toEqual(['packs']);
    // The base itself is still never made.
    const gone = new DirectoryStore(join(root, 'nope', 'team-a'), { mustExist: join(root, 'nope') });
    await expect(gone.put('k', Buffer.from('1'))).rejects.toMatchObject({
      code: 'NOT_FOUND',
      message: expect.stringContaining(`directory ${join(root, 'nope')} does not exist`),
    });
    expect(() => new DirectoryStore('/a/b', { mustExist: '/c' })).toThrow(RangeError);
  });

  it('lets exactly one of many concurrent create-only puts win', async () => {
    await mkdir(join(root, 'race'));
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) => store.put('race/k', Buffer.from(String(i)), { ifNoneMatch: true })),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(await readdir(join(root, 'race'))).toEqual(['k']);
  });
});
