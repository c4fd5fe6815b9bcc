import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { openDefaultKeyring } from '../../kms/index.js';
import { decodeLeaf, decodeRoot } from '../repo/manifest.js';
import { Repository } from '../repo/repository.js';
import { DirectoryStore } from '../store/directory.js';
import { ManifestBuilder } from './manifest.js';

let dir: string;
let repo: Repository;
const C = 4096;
const L = 4;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-manifest-'));
  await mkdir(join(dir, 'bucket'));
  repo = await Repository.openOrInit(
    new DirectoryStore(join(dir, 'bucket')),
    await openDefaultKeyring(dir),
    'default',
    {
      chunkSize: C,
      leafChunks: L,
    },
  );
});

afterEach(async () => {
  repo.forget();
  await rm(dir, { recursive: true, force: true });
});

const id = (n: number): Buffer => Buffer.alloc(32, n);

it('builds the leaves it enters, drops empty ones, and counts chunks', async () => {
  const m = new ManifestBuilder({ repo, base: undefined, baseChunks: 0, touched: [0, 2], size: 12 * C });
  m.prefetch();
  await m.enter(0);
  m.leaf.set(0, id(1));
  m.leaf.set(3, id(2));
  await m.enter(2);
  await m.finishLeaf();
  const root = decodeRoot(await repo.getPage(await m.putRoot()), 'root');
  expect([...root.leaves.keys()]).toEqual([0]);
  expect(m.chunksTotal).toBe(2);
  const leaf = decodeLeaf(await repo.getPage(root.leaves.get(0) as Buffer), 'leaf');
  expect([...leaf.keys()]).toEqual([0, 3]);
});

it("starts an incremental from the base's leaves, and drops leaves past a smaller size", async () => {
  const first = new ManifestBuilder({ repo, base: undefined, baseChunks: 0, touched: [0, 1, 2], size: 12 * C });
  for (const n of [0, 1, 2]) {
    await first.enter(n);
    first.leaf.set(1, id(n + 1));
  }
  await first.finishLeaf();
  const rootPage = await repo.getPage(await first.putRoot());
  // The volume now has 6 chunks (leaf 2 is past its end); only leaf 1 changed.
  const next = new ManifestBuilder({ repo, base: { id: 'b1', rootPage }, baseChunks: 3, touched: [1], size: 6 * C });
  next.prefetch();
  await next.enter(1);
  expect(next.leaf.get(1)?.equals(id(2))).toBe(true);
  next.leaf.set(2, id(9));
  await next.finishLeaf();
  const root = decodeRoot(await repo.getPage(await next.putRoot()), 'root');
  expect([...root.leaves.keys()].sort()).toEqual([0, 1]);
  expect(next.chunksTotal).toBe(4);
});
