import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FerryError } from '../../common/index.js';
import { DirectoryStore } from '../store/directory.js';
import { indexedPack } from './chunk-index.js';
import { RepoKeys } from './crypto.js';
import { packKey } from './layout.js';
import { PackBuilder } from './pack.js';
import { readStoredPackHeader } from './pack-header.js';

let dir: string;
let store: DirectoryStore;
const keys = new RepoKeys(randomBytes(32));

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-pack-header-'));
  store = new DirectoryStore(dir);
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A stored pack of `chunks` random chunks (64 KiB, or 1 KiB for many); returns its id, body and what an index object would say of it. */
async function storedPack(chunks: number) {
  const pack = new PackBuilder(keys);
  for (let i = 0; i < chunks; i++) {
    const data = randomBytes(chunks > 100 ? 1024 : 65536);
    pack.add(keys.id(data), data);
  }
  const body = Buffer.from(pack.finish());
  await store.put(packKey(pack.ref.id), body);
  return { id: pack.ref.id, body, indexed: indexedPack(pack.ref, pack.entries) };
}

function failure(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => undefined,
    (err: unknown) => err,
  );
}

describe('readStoredPackHeader', () => {
  it('reads what a pack holds from its own header, as an index object says it (small and large headers)', async () => {
    for (const chunks of [3, 1600]) {
      const { id, indexed } = await storedPack(chunks);
      const read = await readStoredPackHeader(store, keys, id);
      expect(read.ref.id).toBe(id);
      expect(read.ref.salt.equals(indexed.ref.salt)).toBe(true);
      expect(read.blobs.equals(indexed.blobs)).toBe(true);
    }
  });

  it('names the object in DATA_CORRUPTION for a truncated or altered pack; NOT_FOUND for a missing one', async () => {
    const { id, body } = await storedPack(3);
    const key = packKey(id);
    await store.put(key, body.subarray(0, body.length - 100));
    const truncated = await failure(readStoredPackHeader(store, keys, id));
    expect(truncated).toBeInstanceOf(FerryError);
    expect((truncated as FerryError).code).toBe('DATA_CORRUPTION');
    expect((truncated as FerryError).message).toContain(key);
    // A listing's size that no longer holds (the object was cut since): not a range error.
    const stale = await failure(readStoredPackHeader(store, keys, id, { size: body.length }));
    expect((stale as FerryError).code).toBe('DATA_CORRUPTION');
    const altered = Buffer.from(body);
    altered[altered.length - 20] = (altered[altered.length - 20] ?? 0) ^ 1;
    await store.put(key, altered);
    const bad = await failure(readStoredPackHeader(store, keys, id));
    expect((bad as FerryError).code).toBe('DATA_CORRUPTION');
    expect((bad as FerryError).message).toContain(key);
    await store.delete([key]);
    expect(((await failure(readStoredPackHeader(store, keys, id))) as FerryError).code).toBe('NOT_FOUND');
  });
});
