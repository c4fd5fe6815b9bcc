/**
 * The cross-tenant rule on a real S3 server (Ceph RGW): a system.user who knows the bucket's keys creates an S3
 * credential onto the bucket and prefix of the admin's repository; enumerate and restore through it are refused,
 * while the same user's repository under another prefix of the same bucket works.
 */
import { randomBytes } from 'node:crypto';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import type { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearerAuth, createApp, createTokenVerifier, mintToken } from '../api/index.js';
import { createS3Client } from '../cloudsnap/store/index.js';
import { type CephRgw, startCephRgw } from './support/ceph-rgw.js';
import { type KeyHarness, openHarness } from './support/key-harness.js';
import { tenantRequests } from './support/tenant-requests.js';

const SECRET = randomBytes(32);
const BUCKET = 'shared-bucket';
let rgw: CephRgw;
let h: KeyHarness;
let app: Hono;
const tokens = new Map<string, string>();

const { send, ok, backUp } = tenantRequests<string>(() => ({ app, tokens, engine: h.engine }));

function s3(name: string, prefix: string) {
  return {
    name,
    bucket: BUCKET,
    prefix,
    aws_credential: {
      access_key: rgw.accessKeyId,
      secret_key: rgw.secretAccessKey,
      endpoint: rgw.endpoint,
      region: 'us-east-1',
    },
  };
}

beforeAll(async () => {
  [rgw, h] = await Promise.all([startCephRgw(), openHarness()]);
  const client = createS3Client({
    endpoint: rgw.endpoint,
    region: 'us-east-1',
    accessKeyId: rgw.accessKeyId,
    secretAccessKey: rgw.secretAccessKey,
  });
  await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
  const verifier = await createTokenVerifier({ sharedSecrets: [SECRET] });
  app = createApp({
    engine: h.engine,
    credentials: h.credentials,
    cloudBackups: h.backups,
    authenticate: bearerAuth(verifier),
  });
  tokens.set('admin', await mintToken(SECRET, { sub: 'root', roles: ['system.admin'] }));
  tokens.set('alice', await mintToken(SECRET, { sub: 'alice', roles: ['system.user'] }));
}, 60_000);

afterAll(async () => {
  await h?.close();
  await rgw?.stop();
});

describe('S3 credentials of two tenants onto one bucket', () => {
  it("refuses the user's credential onto the admin's prefix; her own prefix works", async () => {
    await ok('admin', 'POST', '/v1/credentials', s3('admins', 'admin'));
    const adminBackup = await backUp('admin', 'payroll', 'admins');

    await ok('alice', 'POST', '/v1/credentials', s3('sneaky', 'admin'));
    const listed = await send('alice', 'POST', '/v1/cloudbackups/enumerate/filters', { credential_id: 'sneaky' });
    expect([listed.status, listed.body.code]).toEqual([403, 'PERMISSION_DENIED']);
    const restore = await send('alice', 'POST', '/v1/cloudbackups/restore', {
      credential_id: 'sneaky',
      backup_id: adminBackup,
      restore_volume_name: 'stolen',
    });
    expect(restore.status).toBe(403);
    expect((await h.engine.listVolumes()).map((v) => v.name)).not.toContain('stolen');

    await ok('alice', 'POST', '/v1/credentials', s3('alices', 'alice'));
    const own = await backUp('alice', 'notes', 'alices');
    const mine = await ok<{ backups: { id: string }[] }>('alice', 'POST', '/v1/cloudbackups/enumerate/filters', {
      credential_id: 'alices',
    });
    expect(mine.backups.map((b) => b.id)).toEqual([own]);
  });
});
