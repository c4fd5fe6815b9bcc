/**
 * Runs the object-store conformance suite against every backend on a real server: the directory store on a temp
 * directory, S3Store on single-host Ceph RGW, AzureBlobStore on Azurite, and the Google Cloud Storage helper (the S3
 * code path) pointed at the same radosgw. Each server starts once for the file.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, DeleteBucketCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { BlobServiceClient, ContainerClient, StorageSharedKeyCredential } from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AzureBlobStore, DirectGet, DirectoryStore, openObjectStore } from '../cloudsnap/index.js';
import { createGcsClient, createGcsStore, createS3Client, S3Store } from '../cloudsnap/store/index.js';
import { describeObjectStoreConformance } from '../cloudsnap/testing.js';
import { type Azurite, startAzurite } from './support/azurite.js';
import { type CephRgw, startCephRgw } from './support/ceph-rgw.js';

let rgw: CephRgw;
let azurite: Azurite;

beforeAll(async () => {
  [rgw, azurite] = await Promise.all([startCephRgw(), startAzurite()]);
  console.info(`Ceph RGW answered S3 after ${rgw.startupMs} ms`);
});

afterAll(async () => {
  await Promise.all([rgw?.stop(), azurite?.stop()]);
});

function rgwClient(secret = rgw.secretAccessKey): S3Client {
  return createS3Client({
    endpoint: rgw.endpoint,
    region: 'us-east-1',
    accessKeyId: rgw.accessKeyId,
    secretAccessKey: secret,
    maxAttempts: 2,
  });
}

async function createBucket(client: S3Client, bucket: string): Promise<void> {
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
}

describeObjectStoreConformance(
  'DirectoryStore',
  async () => {
    const root = await mkdtemp(join(tmpdir(), 'ferry-dirstore-'));
    return {
      store: new DirectoryStore(root),
      missingBucket: new DirectoryStore(join(root, 'does-not-exist')),
      cleanup: () => rm(root, { recursive: true, force: true }),
    };
  },
  { credentialed: false },
);

describeObjectStoreConformance('S3Store on Ceph RGW', async () => {
  const client = rgwClient();
  await createBucket(client, 'ferry-s3');
  return {
    store: new S3Store(client, 'ferry-s3', { prefix: 'backups' }),
    badCredentials: new S3Store(rgwClient('wrong-secret'), 'ferry-s3'),
    missingBucket: new S3Store(client, 'ferry-no-such-bucket'),
    cleanup: async () => {
      await client.send(new DeleteBucketCommand({ Bucket: 'ferry-s3' }));
    },
  };
});

describeObjectStoreConformance('Google Cloud Storage helper (S3 code path) on Ceph RGW', async () => {
  const client = createGcsClient({ endpoint: rgw.endpoint, accessId: rgw.accessKeyId, secret: rgw.secretAccessKey });
  // Created through the S3 client: radosgw refuses region 'auto' as a location constraint (GCS buckets exist already).
  await createBucket(rgwClient(), 'ferry-gcs');
  // radosgw ignores x-goog-if-generation-match, so this run exercises If-None-Match; see docs/OBJECT-STORES.md.
  return {
    store: createGcsStore(client, 'ferry-gcs', { createOnly: 'if-none-match' }),
    badCredentials: createGcsStore(
      createGcsClient({ endpoint: rgw.endpoint, accessId: rgw.accessKeyId, secret: 'wrong-secret' }),
      'ferry-gcs',
      { createOnly: 'if-none-match' },
    ),
    missingBucket: createGcsStore(client, 'ferry-gcs-missing'),
    cleanup: async () => {
      await rgwClient().send(new DeleteBucketCommand({ Bucket: 'ferry-gcs' }));
    },
  };
});

describeObjectStoreConformance('AzureBlobStore on Azurite', async () => {
  const service = BlobServiceClient.fromConnectionString(azurite.connectionString);
  const container = service.getContainerClient('ferry-azure');
  await container.create();
  const wrongKey = Buffer.from('not the account key').toString('base64');
  return {
    store: new AzureBlobStore(container, { prefix: 'backups/' }),
    badCredentials: new AzureBlobStore(
      new ContainerClient(
        `${azurite.endpoint}/ferry-azure`,
        new StorageSharedKeyCredential(azurite.accountName, wrongKey),
        { retryOptions: { maxTries: 1 } },
      ),
    ),
    missingBucket: new AzureBlobStore(service.getContainerClient('ferry-missing')),
    cleanup: async () => {
      await container.delete();
    },
  };
});

it('openObjectStore wires each provider from a credential', async () => {
  const root = await mkdtemp(join(tmpdir(), 'ferry-open-'));
  try {
    const s3 = rgwClient();
    await createBucket(s3, 'ferry-open');
    await BlobServiceClient.fromConnectionString(azurite.connectionString).getContainerClient('ferry-open').create();
    const stores = await Promise.all([
      openObjectStore({ provider: 'directory', bucket: root }),
      openObjectStore({
        provider: 's3',
        bucket: 'ferry-open',
        endpoint: rgw.endpoint,
        access_key: rgw.accessKeyId,
        secret_key: rgw.secretAccessKey,
        prefix: 'p',
      }),
      openObjectStore({
        provider: 'azure',
        bucket: 'ferry-open',
        endpoint: azurite.endpoint,
        access_key: azurite.accountName,
        secret_key: azurite.accountKey,
      }),
    ]);
    for (const store of stores) {
      await store.put('hello/world', Buffer.from('hi'));
      expect((await store.get('hello/world')).toString()).toBe('hi');
      expect((await store.list('hello/')).objects.map((o) => o.key)).toEqual(['hello/world']);
      await store.delete(['hello/world']);
    }
    expect(stores.map((s) => s.location)).toEqual([`file://${root}`, 's3://ferry-open/p/', 'azure://ferry-open/']);
    const google = await openObjectStore({ provider: 'google', bucket: 'b', access_key: 'GOOG1E', secret_key: 's' });
    expect(google.location).toBe('gs://b/');
    expect(google.conditionalCreate).toBe(true);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

describe('S3Store direct GETs on Ceph RGW (s3-direct-get.ts)', () => {
  /** SDK GetObject calls a client made, so a test can tell the direct path answered (or did not). */
  function countSdkGets(client: S3Client): { count: number } {
    const seen = { count: 0 };
    client.middlewareStack.add(
      (next, context) => (args) => {
        if (context.commandName === 'GetObjectCommand') seen.count++;
        return next(args);
      },
      { step: 'initialize', name: 'countGets' },
    );
    return seen;
  }

  it('signs for itself: whole objects and ranges of odd keys come back without the SDK, into the given buffer', async () => {
    const client = rgwClient();
    await createBucket(client, 'ferry-direct');
    const direct = await DirectGet.for(client);
    expect(direct).toBeDefined();
    const body = randomBytes(3 * 1024 * 1024 + 17);
    const keys = ['plain/key', "odd/with space/ünï 日本/+%20~!*()'=;:@&$,[]"];
    for (const key of keys) {
      await client.send(new PutObjectCommand({ Bucket: 'ferry-direct', Key: key, Body: body }));
      expect((await direct?.get('ferry-direct', key, undefined, undefined, undefined))?.equals(body)).toBe(true);
      const into = Buffer.alloc(2 * 1024 * 1024);
      const range = { offset: 1024 * 1024 + 5, length: 2 * 1024 * 1024 };
      const part = await direct?.get('ferry-direct', key, range, into, undefined);
      expect(part?.equals(body.subarray(range.offset, range.offset + range.length))).toBe(true);
      expect(part?.buffer).toBe(into.buffer);
    }
    // Anything but a complete success is left to the SDK path.
    expect(await direct?.get('ferry-direct', 'missing', undefined, undefined, undefined)).toBeUndefined();
    const pastEnd = { offset: body.length - 10, length: 20 };
    expect(await direct?.get('ferry-direct', 'plain/key', pastEnd, undefined, undefined)).toBeUndefined();
    const wrong = await DirectGet.for(rgwClient('wrong-secret'));
    expect(await wrong?.get('ferry-direct', 'plain/key', undefined, undefined, undefined)).toBeUndefined();
    // An AWS S3 client (no endpoint, virtual-hosted style) gets no direct path.
    const aws = createS3Client({ region: 'us-east-1', accessKeyId: 'a', secretAccessKey: 'b' });
    expect(await DirectGet.for(aws)).toBeUndefined();
    aws.destroy();
  });

  it('is what S3Store.get uses; errors still come from the SDK path', async () => {
    const client = rgwClient();
    const sdkGets = countSdkGets(client);
    const store = new S3Store(client, 'ferry-direct', { prefix: 'store' });
    const body = randomBytes(100_000);
    await store.put('a/b', body);
    expect((await store.get('a/b')).equals(body)).toBe(true);
    expect((await store.get('a/b', { range: { offset: 10, length: 50_000 } })).equals(body.subarray(10, 50_010))).toBe(
      true,
    );
    expect(sdkGets.count).toBe(0);
    await expect(store.get('a/missing')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(sdkGets.count).toBe(1);
  });
});
