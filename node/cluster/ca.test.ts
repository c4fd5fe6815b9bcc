import { X509Certificate } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { isFerryError } from '../../common/index.js';
import { createClusterCa, issueNodeCert, verifyNodeCert } from './ca.js';

async function caTempDirs(): Promise<string[]> {
  return (await readdir(tmpdir())).filter((name) => name.startsWith('ferry-ca-'));
}

describe('cluster CA', () => {
  it('issues a node certificate naming the node id and its addresses, verified against the CA', async () => {
    const before = await caTempDirs();
    const ca = await createClusterCa({ clusterId: 'c1' });
    const node = await issueNodeCert(ca, { nodeId: 'node-1', addresses: ['10.0.0.7', 'host-1.example'] });
    expect(new X509Certificate(ca.certPem).ca).toBe(true);
    const cert = new X509Certificate(node.certPem);
    expect(cert.ca).toBe(false);
    expect(cert.subject).toContain('CN=node-1');
    expect(cert.subjectAltName).toContain('URI:ferry-node:node-1');
    expect(cert.subjectAltName).toContain('IP Address:10.0.0.7');
    expect(cert.subjectAltName).toContain('DNS:host-1.example');
    expect(cert.checkPrivateKey((await import('node:crypto')).createPrivateKey(node.keyPem))).toBe(true);
    expect(verifyNodeCert(ca.certPem, node.certPem, 'node-1')).toBe('node-1');
    expect(verifyNodeCert(ca.certPem, node.certPem)).toBe('node-1');
    // The keys written for openssl are gone.
    expect((await caTempDirs()).filter((name) => !before.includes(name))).toEqual([]);
  });

  it('refuses a certificate from another CA, for another node, or out of its validity', async () => {
    const ca = await createClusterCa({ clusterId: 'c1' });
    const other = await createClusterCa({ clusterId: 'c2' });
    const stranger = await issueNodeCert(other, { nodeId: 'node-1', addresses: ['127.0.0.1'] });
    const node = await issueNodeCert(ca, { nodeId: 'node-1', addresses: ['127.0.0.1'], days: 1 });
    const refused = (fn: () => unknown, text: string) => {
      try {
        fn();
      } catch (err: unknown) {
        expect(isFerryError(err, 'UNAUTHENTICATED')).toBe(true);
        expect((err as Error).message).toContain(text);
        return;
      }
      throw new Error('not refused');
    };
    refused(() => verifyNodeCert(ca.certPem, stranger.certPem, 'node-1'), 'not from this cluster CA');
    refused(() => verifyNodeCert(ca.certPem, node.certPem, 'node-2'), 'not "node-2"');
    refused(
      () => verifyNodeCert(ca.certPem, node.certPem, 'node-1', new Date(Date.now() + 3 * 86_400_000)),
      'valid only',
    );
  });

  it('rejects a node id or an address that cannot go in a certificate', async () => {
    const ca = await createClusterCa({ clusterId: 'c1' });
    await expect(issueNodeCert(ca, { nodeId: 'a/b', addresses: [] })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
    await expect(issueNodeCert(ca, { nodeId: 'n', addresses: ['bad host,DNS:evil'] })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
    });
    await expect(createClusterCa({ clusterId: '/CN=x' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});
