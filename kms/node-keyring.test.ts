/**
 * A node's keyring as `ferry node start` opens it: the keyring file when alone; in a cluster, the cluster's keyring
 * with the node's own KEKs moved into it (never overwriting a different KEK of the same name).
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { memorySecretsCluster } from '../test/support/cluster-secrets.js';
import { rejection } from '../test/support/rejection.js';
import { ClusterKeyring } from './cluster-keyring.js';
import { DEFAULT_KEK, openDefaultKeyring } from './default-keyring.js';
import { LocalKeyring } from './local-keyring.js';
import { openNodeKeyring } from './node-keyring.js';

const dirs: string[] = [];
const context = { credential: 'c1' };

async function dataDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-node-keyring-'));
  dirs.push(dir);
  return dir;
}

afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

type Line = { level: string; msg: string; fields?: Record<string, unknown> };

describe('openNodeKeyring', () => {
  it('without cluster secrets: the keyring file under the data directory, as always', async () => {
    const dir = await dataDir();
    const keyring = await openNodeKeyring({ dataDir: dir });
    expect(keyring).toBeInstanceOf(LocalKeyring);
    expect(await keyring.describeKek(DEFAULT_KEK)).toEqual({ id: 'default', version: 1 });
    await keyring.close();
    expect((await readFile(join(dir, 'keyring', 'master.key'))).length).toBe(32);
  });

  it("in a cluster: a fresh node creates no keyring file; the cluster's `default` is made once for all", async () => {
    const cluster = memorySecretsCluster();
    const [dirA, dirB] = [await dataDir(), await dataDir()];
    const a = await openNodeKeyring({ dataDir: dirA, secrets: cluster.node().secrets });
    const b = await openNodeKeyring({ dataDir: dirB, secrets: cluster.node().secrets });
    expect(a).toBeInstanceOf(ClusterKeyring);
    const wrapped = await a.wrap(DEFAULT_KEK, Buffer.from('credential secret'), context);
    expect(await b.unwrap(wrapped, context)).toEqual(Buffer.from('credential secret'));
    expect(await b.listKeks()).toHaveLength(1);
    await expect(readFile(join(dirA, 'keyring', 'keyring.bin'))).rejects.toThrow();
  });

  it('a node that ran alone brings its KEKs into the cluster; what it wrapped opens on every node', async () => {
    const cluster = memorySecretsCluster();
    const dir = await dataDir();
    const alone = await openDefaultKeyring(dir);
    await alone.createKek('volumes');
    await alone.rotateKek('volumes');
    const oldWraps = [
      await alone.wrap(DEFAULT_KEK, Buffer.from('old credential'), context),
      await alone.wrap('volumes', Buffer.from('old volume key'), context),
    ];
    const keyTexts = (await alone.exportKeks()).flatMap((k) =>
      k.versions.flatMap((v) => (v.key === undefined ? [] : [v.key.toString('base64'), v.key.toString('hex')])),
    );
    expect(keyTexts).toHaveLength(6);
    await alone.close();
    const fileBefore = await readFile(join(dir, 'keyring', 'keyring.bin'));

    const lines: Line[] = [];
    const log = (level: string, msg: string, fields?: Record<string, unknown>) =>
      void lines.push({ level, msg, ...(fields !== undefined && { fields }) });
    const joined = await openNodeKeyring({ dataDir: dir, secrets: cluster.node().secrets, log });
    const other = new ClusterKeyring(cluster.node().secrets);
    expect(await other.unwrap(oldWraps[0] ?? fail(), context)).toEqual(Buffer.from('old credential'));
    expect(await other.unwrap(oldWraps[1] ?? fail(), context)).toEqual(Buffer.from('old volume key'));
    expect((await other.describeKek('volumes')).version).toBe(2);
    expect(lines[0]?.fields).toMatchObject({ added: ['default', 'volumes'], present: [] });
    const logged = JSON.stringify(lines);
    for (const text of keyTexts) expect(logged).not.toContain(text);
    // The keyring file is left as it was.
    expect((await readFile(join(dir, 'keyring', 'keyring.bin'))).equals(fileBefore)).toBe(true);
    await joined.close();

    // The next start finds them there already.
    lines.length = 0;
    await openNodeKeyring({ dataDir: dir, secrets: cluster.node().secrets, log });
    expect(lines[0]?.fields).toMatchObject({ added: [], present: ['default', 'volumes'] });
  });

  it('never overwrites a different KEK of the same name: FAILED_PRECONDITION naming it, nothing added', async () => {
    const cluster = memorySecretsCluster();
    const first = await openNodeKeyring({ dataDir: await dataDir(), secrets: cluster.node().secrets });
    const clusterWrap = await first.wrap(DEFAULT_KEK, Buffer.from('cluster data'), context);
    const dir = await dataDir();
    const alone = await openDefaultKeyring(dir); // its own `default`, other bytes
    await alone.createKek('extra');
    await alone.close();
    const err = await rejection(openNodeKeyring({ dataDir: dir, secrets: cluster.node().secrets }));
    expect(err.code).toBe('FAILED_PRECONDITION');
    expect(err.message).toContain('KEK "default"');
    expect(err.message).toContain(join(dir, 'keyring', 'keyring.bin'));
    const keyring = new ClusterKeyring(cluster.node().secrets);
    expect((await keyring.listKeks()).map((k) => k.id)).toEqual(['default']);
    expect(await keyring.unwrap(clusterWrap, context)).toEqual(Buffer.from('cluster data'));
  });

  it('a KEK destroyed in the cluster is not brought back by a node whose file still has it', async () => {
    const cluster = memorySecretsCluster();
    const dir = await dataDir();
    const alone = await openDefaultKeyring(dir);
    await alone.createKek('gone');
    await alone.close();
    const joined = await openNodeKeyring({ dataDir: dir, secrets: cluster.node().secrets });
    await joined.destroyKek('gone');
    const lines: Line[] = [];
    const again = await openNodeKeyring({
      dataDir: dir,
      secrets: cluster.node().secrets,
      log: (level, msg, fields) => void lines.push({ level, msg, ...(fields !== undefined && { fields }) }),
    });
    expect((await again.listKeks()).find((k) => k.id === 'gone')).toMatchObject({ destroyed: true });
    expect(lines.find((l) => l.level === 'warn')?.fields).toMatchObject({ keks: ['gone'] });
  });
});

function fail(): never {
  throw new Error('missing');
}
