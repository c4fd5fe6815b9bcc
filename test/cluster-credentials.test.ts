/**
 * Credentials are cluster objects: two nodes' APIs (two apps, each with its own etcd client, keyring and credential
 * store, as two `ferry node start` processes have) on one real etcd. A credential created through node A's API is
 * used by node B: B opens its sealed Azure account key with the cluster's keyring and reaches Azurite with it. A node
 * on the same store but with a keyring of its own (a node alone) cannot; and a name created on both nodes at once
 * is taken once.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlobServiceClient } from '@azure/storage-blob';
import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../api/index.js';
import { CredentialStore } from '../cloudsnap/index.js';
import { type Keyring, openNodeKeyring } from '../kms/index.js';
import { ClusterSecrets, connectEtcd, type EtcdStore } from '../node/index.js';
import { requestJson } from './support/app-request.js';
import { type Azurite, startAzurite } from './support/azurite.js';
import { type EtcdServer, startEtcd } from './support/etcd.js';

interface TestNode {
  app: Hono;
  store: EtcdStore;
  keyring: Keyring;
}

let etcd: EtcdServer;
let azurite: Azurite;
const clusterSecret = randomBytes(32);
const nodes: TestNode[] = [];
const dirs: string[] = [];

/** A node's API on the shared etcd; `cluster` false: a node alone (its own keyring file), same store. */
async function startNode(cluster = true): Promise<TestNode> {
  const dataDir = await mkdtemp(join(tmpdir(), 'ferry-cluster-cred-'));
  dirs.push(dataDir);
  const store = await connectEtcd([etcd.url]);
  const secrets = cluster ? new ClusterSecrets(store, clusterSecret) : undefined;
  const keyring = await openNodeKeyring({ dataDir, secrets });
  const credentials = new CredentialStore(store, keyring);
  const node = { app: createApp({ credentials, ownership: store }), store, keyring };
  nodes.push(node);
  return node;
}

beforeAll(async () => {
  [etcd, azurite] = await Promise.all([startEtcd(), startAzurite()]);
  await BlobServiceClient.fromConnectionString(azurite.connectionString).getContainerClient('shared').create();
});

afterAll(async () => {
  for (const node of nodes.splice(0)) {
    await node.keyring.close();
    await node.store.close();
  }
  await Promise.all([etcd?.destroy(), azurite?.stop()]);
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

describe('credentials across the nodes of a cluster', () => {
  it("a credential created through node A's API is used by node B", async () => {
    const [a, b] = [await startNode(), await startNode()];
    const created = await requestJson<{ credential_id: string }>(a.app, 'POST', '/v1/credentials', {
      name: 'offsite',
      provider: 'azure',
      bucket: 'shared',
      azure_credential: {
        account_name: azurite.accountName,
        account_key: azurite.accountKey,
        endpoint: azurite.endpoint,
      },
    });
    expect(created.status).toBe(200);
    const id = created.body.credential_id;
    const listed = await requestJson<{ credential_ids: string[] }>(b.app, 'GET', '/v1/credentials');
    expect(listed.body.credential_ids).toEqual([id]);
    // Validate writes, reads and deletes a probe object with the account key B unwrapped.
    const used = await requestJson(b.app, 'GET', `/v1/credentials/validate/${id}`);
    expect(used).toMatchObject({ status: 200 });

    // The same store without the cluster's keyring: the sealed key does not open.
    const alone = await startNode(false);
    const refused = await requestJson<{ code: string }>(alone.app, 'GET', `/v1/credentials/validate/${id}`);
    expect(refused.status).toBeGreaterThanOrEqual(400);
    expect(refused.body.code).toBe('DATA_CORRUPTION');
  });

  it('a name created on two nodes at once is taken once', async () => {
    const [a, b] = [await startNode(), await startNode()];
    const body = (path: string) => ({
      name: 'race',
      provider: 'azure',
      bucket: path,
      azure_credential: { account_name: 'acct', account_key: azurite.accountKey },
    });
    const answers = await Promise.all([
      requestJson(a.app, 'POST', '/v1/credentials', body('one')),
      requestJson(b.app, 'POST', '/v1/credentials', body('two')),
    ]);
    expect(answers.map((r) => r.status).sort()).toEqual([200, 409]);
    const names = await requestJson<{ credential_ids: string[] }>(a.app, 'GET', '/v1/credentials');
    expect(names.body.credential_ids).toHaveLength(2); // "offsite" from the test above, and one "race"
  });
});
