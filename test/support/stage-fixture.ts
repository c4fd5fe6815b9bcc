/**
 * What the backup stages' unit tests start from: an engine on a SQLite store in a temporary directory, a repository
 * on a directory store beside it, and an 8 MiB volume `db`.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DirectoryStore, Repository } from '../../cloudsnap/index.js';
import { openDefaultKeyring } from '../../kms/index.js';
import { openEngine, SqliteStore, type VolumeEngine } from '../../node/index.js';

const MiB = 1024 * 1024;

export interface StageFixture {
  dir: string;
  engine: VolumeEngine;
  store: SqliteStore;
  repo: Repository;
  /** Closes the engine and the store and removes the directory. */
  close(): Promise<void>;
}

/** Opens a fixture in a new directory named from `prefix`. */
export async function openStageFixture(prefix: string): Promise<StageFixture> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  const store = new SqliteStore(join(dir, 'cluster.db'));
  const engine = await openEngine({ dataDir: dir, store });
  await mkdir(join(dir, 'bucket'));
  const repo = await Repository.openOrInit(
    new DirectoryStore(join(dir, 'bucket')),
    await openDefaultKeyring(dir),
    'default',
  );
  await engine.createVolume({ name: 'db', size: 8 * MiB });
  return {
    dir,
    engine,
    store,
    repo,
    close: async () => {
      await engine.close();
      await store.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
