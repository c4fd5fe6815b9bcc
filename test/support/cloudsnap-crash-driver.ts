/**
 * Child process for CloudSnap crash tests. Prints "PROGRESS <bytes_done> <bytes_total>" lines while it transfers data and
 * "FINISHED <json>" at the end; the test SIGKILLs it half-way.
 *
 * usage: node --import tsx test/support/cloudsnap-crash-driver.ts DATA_DIR setup|backup|restore [BACKUP_ID]
 *
 * The repository is the directory DATA_DIR/bucket, or an S3 bucket when FERRY_CRASH_S3 holds
 * `{"endpoint","accessKeyId","secretAccessKey","bucket"}` (JSON).
 */
import { randomBytes } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import {
  backupVolume,
  DirectoryStore,
  type GetOptions,
  type ObjectStore,
  type PutOptions,
  Repository,
  restoreBackup,
} from '../../cloudsnap/index.js';
import { createS3Client, S3Store } from '../../cloudsnap/store/index.js';
import { openDefaultKeyring } from '../../kms/index.js';
import { openEngine, SqliteStore } from '../../node/index.js';
import { DelegatingStore } from './delegating-store.js';

const MiB = 1024 * 1024;

/** Adds 40 ms to every data transfer of a store. */
class SlowStore extends DelegatingStore {
  override async put(key: string, body: Buffer, options?: PutOptions): Promise<void> {
    await delay(40);
    await this.inner.put(key, body, options);
  }
  override async get(key: string, options?: GetOptions): Promise<Buffer> {
    await delay(40);
    return this.inner.get(key, options);
  }
}
const [dataDir, action, backupId] = process.argv.slice(2) as [string, string, string | undefined];

function repositoryStore(): ObjectStore {
  const s3 = process.env.FERRY_CRASH_S3;
  if (s3 === undefined) return new DirectoryStore(join(dataDir, 'bucket'));
  const { endpoint, accessKeyId, secretAccessKey, bucket } = JSON.parse(s3) as Record<string, string>;
  const client = createS3Client({
    endpoint,
    region: 'us-east-1',
    accessKeyId: accessKeyId as string,
    secretAccessKey: secretAccessKey as string,
  });
  return new S3Store(client, bucket as string);
}

async function main(): Promise<void> {
  const store = new SqliteStore(join(dataDir, 'cluster.db'));
  const engine = await openEngine({ dataDir, store });
  const keys = await openDefaultKeyring(dataDir);
  await mkdir(join(dataDir, 'bucket'), { recursive: true });
  // A store with some latency, like a remote one: the transfer takes long enough to be killed half-way.
  const slow = new SlowStore(repositoryStore());
  const repo = await Repository.openOrInit(slow, keys, 'default', { packSize: MiB });
  const onProgress = (p: { bytes_done: number; bytes_total: number; phase: string }): void => {
    if (p.phase === 'transferring') process.stdout.write(`PROGRESS ${p.bytes_done} ${p.bytes_total}\n`);
  };
  let result: unknown;
  if (action === 'setup') {
    await engine.createVolume({ name: 'vol', size: 96 * MiB });
    const dev = await engine.openExport('vol');
    for (let o = 0; o < 96 * MiB; o += 4 * MiB) await dev.write(o, randomBytes(4 * MiB));
    await dev.close();
    result = {};
  } else if (action === 'backup') {
    result = await backupVolume(
      { engine, repo, store },
      { volume: 'vol', onProgress, indexEvery: 2, uploadConcurrency: 2 },
    );
  } else {
    result = await restoreBackup(
      { engine, repo },
      { backupId: backupId as string, volumeName: 'copy', onProgress, concurrency: 2 },
    );
  }
  await engine.close();
  process.stdout.write(`FINISHED ${JSON.stringify(result)}\n`);
  process.exit(0);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(3);
});
