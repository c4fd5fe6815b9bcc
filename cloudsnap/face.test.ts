/**
 * What loading CloudSnap's face (index.ts) costs every process that imports it (the node, the serverless handler):
 * no cloud SDK (openObjectStore loads one when a credential first needs it) and no test framework. The two faces
 * that do load them, store/index.ts (the S3 and GCS classes) and testing.ts (the conformance suite), are probed the
 * same way, which shows the probe sees such a load.
 */
import { describe, expect, it } from 'vitest';
import { packagesLoadedBy } from '../test/support/packages-loaded.js';

const HEAVY = ['@aws-sdk/client-s3', '@azure/storage-blob', 'vitest'];

describe("CloudSnap's faces", () => {
  it('index.ts loads no cloud SDK and no test framework', async () => {
    const loaded = await packagesLoadedBy('cloudsnap/index.ts');
    expect(loaded.has('zstd-napi')).toBe(true);
    expect(HEAVY.filter((p) => loaded.has(p))).toEqual([]);
  });

  it('store/index.ts loads the AWS SDK and testing.ts loads vitest', async () => {
    expect((await packagesLoadedBy('cloudsnap/store/index.ts')).has('@aws-sdk/client-s3')).toBe(true);
    expect((await packagesLoadedBy('cloudsnap/testing.ts')).has('vitest')).toBe(true);
  });
});
