/**
 * The admin secret of a cluster, with the real ClusterSecrets over one in-memory store shared by two nodes: a token
 * minted from one node's admin secret file passes the other node's API; the first node's own secret becomes the
 * cluster's; a later node's own secret is replaced (and says so); NBD TLS-PSK keys follow; no log line holds a secret.
 */
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ClusterSecrets } from '../../node/index.js';
import { memorySecretsCluster } from '../../test/support/cluster-secrets.js';
import { createApp } from '../app.js';
import { adminSecretPath, ensureAdminSecret, readAdminSecret } from './admin-secret.js';
import { mintToken } from './mint.js';
import { nbdPskKey } from './nbd-access.js';
import { setUpNodeAuth } from './node-auth.js';

const dirs: string[] = [];
type Line = { level: string; msg: string; fields?: Record<string, unknown> };

async function dataDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-cluster-auth-'));
  dirs.push(dir);
  return dir;
}

afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

/** A node's API with authentication as `ferry node start` sets it up in a cluster; its log lines. */
async function node(dir: string, secrets: ClusterSecrets) {
  const lines: Line[] = [];
  const auth = await setUpNodeAuth({
    dataDir: dir,
    secrets,
    env: {},
    log: (level, msg, fields) => void lines.push({ level, msg, ...(fields !== undefined && { fields }) }),
  });
  const app = createApp({ ...auth });
  const whoami = async (token: string) =>
    app.request('/v1/auth/whoami', { headers: { authorization: `Bearer ${token}` } });
  return { lines, whoami };
}

async function tokenFrom(dir: string, sub: string): Promise<string> {
  const secret = await readAdminSecret(dir);
  if (secret === undefined) throw new Error(`no admin secret in ${dir}`);
  return mintToken(secret, { sub, roles: ['system.admin'] });
}

describe('the admin secret of a cluster', () => {
  it('a token minted on one node host works on every node; NBD keys are the same everywhere', async () => {
    const cluster = memorySecretsCluster();
    const [dirA, dirB] = [await dataDir(), await dataDir()];
    const a = await node(dirA, cluster.node().secrets);
    const b = await node(dirB, cluster.node().secrets);
    const fromA = await tokenFrom(dirA, 'alice');
    expect((await b.whoami(fromA)).status).toBe(200);
    expect(await (await b.whoami(fromA)).json()).toMatchObject({ sub: 'alice' });
    expect((await a.whoami(await tokenFrom(dirB, 'bob'))).status).toBe(200);
    expect((await stat(adminSecretPath(dirB))).mode & 0o777).toBe(0o600);
    const [secretA, secretB] = [await readAdminSecret(dirA), await readAdminSecret(dirB)];
    expect(nbdPskKey(secretA ?? new Uint8Array(), 'alice')).toEqual(nbdPskKey(secretB ?? new Uint8Array(), 'alice'));
    expect(a.lines.find((l) => l.msg === 'admin secret of the cluster')?.fields).toMatchObject({
      source: 'made by this node',
    });
    expect(b.lines.find((l) => l.msg === 'admin secret of the cluster')?.fields).toMatchObject({
      source: 'the cluster store',
    });
    expect(b.lines.find((l) => l.msg === 'authentication on')?.fields).toMatchObject({ admin_secret_scope: 'cluster' });
  });

  it("the first node's own secret becomes the cluster's; a later node's own is replaced, and says so", async () => {
    const cluster = memorySecretsCluster();
    const [dirA, dirB] = [await dataDir(), await dataDir()];
    await ensureAdminSecret(dirA); // both ran alone before
    await ensureAdminSecret(dirB);
    const tokenA = await tokenFrom(dirA, 'alice');
    const oldB = await tokenFrom(dirB, 'bob');
    const textA = (await readFile(adminSecretPath(dirA), 'utf8')).trim();
    const textB = (await readFile(adminSecretPath(dirB), 'utf8')).trim();

    const a = await node(dirA, cluster.node().secrets);
    const b = await node(dirB, cluster.node().secrets);
    expect((await a.whoami(tokenA)).status).toBe(200); // A's tokens survive the move to a cluster
    expect((await b.whoami(tokenA)).status).toBe(200);
    expect((await b.whoami(oldB)).status).toBe(401); // the cluster's secret wins on B
    expect((await readFile(adminSecretPath(dirB), 'utf8')).trim()).toBe(textA);
    const warning = b.lines.find((l) => l.level === 'warn');
    expect(warning?.msg).toContain("replaced by the cluster's");
    expect(warning?.fields).toEqual({ admin_secret_path: adminSecretPath(dirB) });

    // A restart changes nothing, and says nothing about a replacement.
    const again = await node(dirB, cluster.node().secrets);
    expect(again.lines.filter((l) => l.level === 'warn')).toEqual([]);
    expect((await again.whoami(tokenA)).status).toBe(200);

    const logged = JSON.stringify([...a.lines, ...b.lines, ...again.lines]);
    expect(logged).not.toContain(textA);
    expect(logged).not.toContain(textB);
  });

  it('with authentication off, the node still takes the cluster secret (NBD keys derive from it)', async () => {
    const cluster = memorySecretsCluster();
    const [dirA, dirB] = [await dataDir(), await dataDir()];
    await node(dirA, cluster.node().secrets);
    const auth = await setUpNodeAuth({ dataDir: dirB, off: true, secrets: cluster.node().secrets, log: () => {} });
    expect(auth.authenticate).toBeUndefined();
    expect(await readAdminSecret(dirB)).toEqual(await readAdminSecret(dirA));
  });
});
