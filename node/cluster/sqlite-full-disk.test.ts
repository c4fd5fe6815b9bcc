/** The embedded store on a full file system (a small tmpfs mounted here; needs root). */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { ok } from '../../test/support/run.js';
import { SqliteStore } from './sqlite-store.js';

let base: string;
let mnt: string;

beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), 'ferry-store-full-'));
  mnt = join(base, 'mnt');
  await mkdir(mnt);
  await ok('mount', ['-t', 'tmpfs', '-o', 'size=8m', 'tmpfs', mnt]);
});

afterEach(async () => {
  await ok('umount', [mnt]);
  await rm(base, { recursive: true, force: true });
});

async function fill(path: string): Promise<void> {
  const file = await open(path, 'w');
  try {
    for (;;) await file.write(Buffer.alloc(64 * 1024, 1));
  } catch (err: unknown) {
    if (!(err instanceof Error && 'code' in err && err.code === 'ENOSPC')) throw err;
  } finally {
    await file.close();
  }
}

it('answers RESOURCE_EXHAUSTED (not a bare SQLite error) when its file system is full, and works once space returns', async () => {
  const store = new SqliteStore(join(mnt, 'cluster.db'));
  try {
    await store.commit([{ op: 'put', key: '/a', value: { n: 1 } }]);
    await fill(join(mnt, 'filler'));
    const big = randomBytes(512 * 1024).toString('hex');
    const err = await store.commit([{ op: 'put', key: '/b', value: { big } }]).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'RESOURCE_EXHAUSTED' });
    expect(String((err as Error).message)).toMatch(/cluster store .* cannot be written: its file system is full/);
    expect((err as Error).cause).toMatchObject({ code: 'SQLITE_FULL' });
    expect(await store.get('/a')).toEqual({ n: 1 });
    await rm(join(mnt, 'filler'));
    await store.commit([{ op: 'put', key: '/b', value: { big } }]);
    expect(await store.get('/b')).toEqual({ big });
  } finally {
    await store.close();
  }
});
