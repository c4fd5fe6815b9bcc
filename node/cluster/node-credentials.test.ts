import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { verifyNodeCert } from './ca.js';
import { MemoryStore } from './memory-store.js';
import { CA_CERT_KEY, nodeCredentials } from './node-credentials.js';
import { ClusterSecrets } from './sealed.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-node-creds-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

it('nodes starting at once share one sealed CA, each gets its own certificate in <dataDir>/repl (0600)', async () => {
  const store = new MemoryStore();
  const secret = randomBytes(32);
  const start = (nodeId: string) =>
    nodeCredentials({
      store,
      secrets: new ClusterSecrets(store, secret),
      clusterId: 'c1',
      nodeId,
      addresses: ['127.0.0.1'],
      dataDir: join(dir, nodeId),
    });
  const [a, b] = await Promise.all([start('node-a'), start('node-b')]);
  expect(a.caPem).toBe(b.caPem);
  expect(verifyNodeCert(a.caPem, a.certPem)).toBe('node-a');
  expect(verifyNodeCert(a.caPem, b.certPem)).toBe('node-b');
  expect(await store.get(CA_CERT_KEY)).toEqual({ cert_pem: a.caPem });
  expect(JSON.stringify(await store.list('/ferry/secrets/'))).not.toContain('PRIVATE KEY');
  expect((await stat(join(dir, 'node-a', 'repl', 'node.key'))).mode & 0o777).toBe(0o600);

  await expect(
    nodeCredentials({
      store,
      secrets: new ClusterSecrets(store, randomBytes(32)),
      clusterId: 'c1',
      nodeId: 'node-c',
      addresses: ['127.0.0.1'],
      dataDir: join(dir, 'node-c'),
    }),
  ).rejects.toMatchObject({ code: 'DATA_CORRUPTION' });
  await store.close();
});
