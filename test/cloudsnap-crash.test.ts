import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DirectoryStore, type ObjectStore, Repository } from '../cloudsnap/index.js';
import { createS3Client, S3Store } from '../cloudsnap/store/index.js';
import { isFerryError } from '../common/index.js';
import { openDefaultKeyring } from '../kms/index.js';
import { openEngine, SqliteStore, type VolumeEngine } from '../node/index.js';
import { type CephRgw, startCephRgw } from './support/ceph-rgw.js';

const driver = join(import.meta.dirname, 'support', 'cloudsnap-crash-driver.ts');

/** Runs the driver; kills it with SIGKILL once it reports `killAt` of its work done (or lets it finish). */
function driveIn(
  dir: string,
  args: string[],
  killAt?: number,
  env: NodeJS.ProcessEnv = {},
): Promise<{ killed: boolean; finished?: unknown }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', driver, dir, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    let out = '';
    let err = '';
    let killed = false;
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      for (const m of out.matchAll(/PROGRESS (\d+) (\d+)\n/g)) {
        const done = Number(m[1]);
        const total = Number(m[2]);
        if (killAt !== undefined && !killed && total > 0 && done >= total * killAt) {
          killed = true;
          child.kill('SIGKILL');
        }
      }
    });
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      const fin = /FINISHED (.*)\n/.exec(out);
      if (fin !== null) resolve({ killed, finished: JSON.parse(fin[1] as string) });
      else if (killed) resolve({ killed });
      else reject(new Error(`driver exited ${code}: ${err}`));
    });
  });
}

async function digest(engine: VolumeEngine, name: string): Promise<string> {
  const dev = await engine.openExport(name);
  const h = createHash('sha256');
  for (let o = 0; o < dev.size; o += 8 * 1024 * 1024)
    h.update(await dev.read(o, Math.min(8 * 1024 * 1024, dev.size - o)));
  await dev.close();
  return h.digest('hex');
}

/** Where the repository lives: what the test opens to look at it, and the driver's environment to use it. */
interface Place {
  store(dir: string): ObjectStore;
  env: NodeJS.ProcessEnv;
}

function describeCrashes(name: string, place: () => Promise<Place>, cleanup: () => Promise<void> = async () => {}) {
  describe(`CloudSnap survives kill -9 mid-backup and mid-restore (${name})`, () => {
    let dir: string;
    let where: Place;
    const drive = (d: string, args: string[], killAt?: number) => driveIn(d, args, killAt, where.env);

    beforeAll(async () => {
      where = await place();
      dir = await mkdtemp(join(tmpdir(), 'ferry-cs-crash-'));
      await drive(dir, ['setup']);
    });

    afterAll(async () => {
      await rm(dir, { recursive: true, force: true });
      await cleanup();
    });

    it('an interrupted backup is never listed, and the next backup reuses what was uploaded', async () => {
      const first = await drive(dir, ['backup'], 0.6);
      expect(first.killed).toBe(true);
      const keys = await openDefaultKeyring(dir);
      const repo = await Repository.open(where.store(dir), keys);
      expect(await repo.listBackups()).toEqual([]);
      const second = await drive(dir, ['backup']);
      const record = second.finished as {
        id: string;
        stats: { bytes_new: number; chunks_new: number; chunks: number };
      };
      // Chunks uploaded and checkpointed before the kill were not uploaded again.
      expect(record.stats.chunks_new).toBeLessThan(record.stats.chunks * 0.7);
      const listed = await (await Repository.open(where.store(dir), keys)).listBackups();
      expect(listed.map((b) => b.id)).toEqual([record.id]);
    });

    it('an interrupted restore leaves a volume marked restoring that cannot be attached, and restoring again completes it', async () => {
      const keys = await openDefaultKeyring(dir);
      const repo = await Repository.open(where.store(dir), keys);
      const [backup] = await repo.listBackups();
      const id = (backup as { id: string }).id;
      const killed = await drive(dir, ['restore', id], 0.5);
      expect(killed.killed).toBe(true);
      let store = new SqliteStore(join(dir, 'cluster.db'));
      let engine = await openEngine({ dataDir: dir, store });
      expect((await engine.inspectVolume('copy')).status).toBe('restoring');
      const attach = await engine.openExport('copy').catch((e: unknown) => e);
      expect(isFerryError(attach, 'FAILED_PRECONDITION')).toBe(true);
      await engine.close();
      await store.close();
      const done = await drive(dir, ['restore', id]);
      expect((done.finished as { status: string }).status).toBe('up');
      store = new SqliteStore(join(dir, 'cluster.db'));
      engine = await openEngine({ dataDir: dir, store });
      const snapshot = (await engine.listSnapshots('vol')).find((s) => s.name.startsWith('cloudsnap-'));
      expect(await digest(engine, 'copy')).toBe(await digest(engine, `vol@${snapshot?.name}`));
      await engine.close();
      await store.close();
    });
  });
}

describeCrashes('directory', async () => ({
  store: (dir) => new DirectoryStore(join(dir, 'bucket')),
  env: {},
}));

let rgw: CephRgw | undefined;
describeCrashes(
  'Ceph RGW',
  async () => {
    rgw = await startCephRgw();
    const settings = {
      endpoint: rgw.endpoint,
      region: 'us-east-1',
      accessKeyId: rgw.accessKeyId,
      secretAccessKey: rgw.secretAccessKey,
    };
    const client = createS3Client(settings);
    await client.send(new CreateBucketCommand({ Bucket: 'ferry-crash' }));
    return {
      store: () => new S3Store(client, 'ferry-crash'),
      env: { FERRY_CRASH_S3: JSON.stringify({ ...settings, bucket: 'ferry-crash' }) },
    };
  },
  async () => {
    await rgw?.stop();
  },
);
