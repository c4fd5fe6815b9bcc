import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DirectoryStore } from './directory.js';
import { MeteredStore, type StoreRequest } from './metered.js';

let dir: string;
let seen: StoreRequest[];
let store: MeteredStore;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-metered-'));
  seen = [];
  store = new MeteredStore(new DirectoryStore(dir), 'directory', (r) => seen.push(r));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('MeteredStore', () => {
  it('reports each operation with its provider, outcome and bytes, and passes results through', async () => {
    await store.put('a/b', Buffer.from('hello'));
    expect((await store.get('a/b')).toString()).toBe('hello');
    expect((await store.head('a/b'))?.size).toBe(5);
    expect((await store.list('a/')).objects.map((o) => o.key)).toEqual(['a/b']);
    await store.delete(['a/b']);
    expect(seen.map((r) => [r.provider, r.operation, r.error, r.bytes])).toEqual([
      ['directory', 'put', undefined, 5],
      ['directory', 'get', undefined, 5],
      ['directory', 'head', undefined, 0],
      ['directory', 'list', undefined, 0],
      ['directory', 'delete', undefined, 0],
    ]);
    for (const r of seen) expect(r.seconds).toBeGreaterThanOrEqual(0);
  });

  it('reports a failed request with its FerryError code and rethrows the same error', async () => {
    const failure = await store.get('missing').catch((err: unknown) => err);
    expect(failure).toMatchObject({ code: 'NOT_FOUND' });
    expect(seen).toEqual([expect.objectContaining({ operation: 'get', error: 'NOT_FOUND', bytes: 0 })]);
  });

  it('ignores an observer that throws', async () => {
    const quiet = new MeteredStore(new DirectoryStore(dir), 'directory', () => {
      throw new Error('observer broke');
    });
    await quiet.put('k', Buffer.from('x'));
    expect((await quiet.get('k')).toString()).toBe('x');
  });
});
