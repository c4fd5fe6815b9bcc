import { Readable } from 'node:stream';
import { S3Client } from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { isFerryError } from '../../common/index.js';
import { createGcsStore, GCS_XML_ENDPOINT } from './gcs.js';

interface Seen {
  method: string;
  path: string;
  query: Record<string, unknown>;
  headers: Record<string, string>;
}

/** An S3 client whose HTTP layer records each request and answers with `status` and `body`. */
function recordingClient(status: number, body = ''): { client: S3Client; seen: Seen[] } {
  const seen: Seen[] = [];
  const client = new S3Client({
    region: 'auto',
    endpoint: GCS_XML_ENDPOINT,
    forcePathStyle: true,
    credentials: { accessKeyId: 'GOOG1EXAMPLE', secretAccessKey: 'secret' },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    maxAttempts: 1,
    requestHandler: {
      handle: async (request: Seen) => {
        seen.push({ method: request.method, path: request.path, query: request.query, headers: request.headers });
        return { response: { statusCode: status, headers: {}, body: Readable.from([Buffer.from(body)]) } };
      },
    },
  });
  return { client, seen };
}

describe('Google Cloud Storage store (request shape; no GCS endpoint is reachable here)', () => {
  it('sends create-only puts with a signed x-goog-if-generation-match: 0 and no If-None-Match', async () => {
    const { client, seen } = recordingClient(412, '<Error><Code>PreconditionFailed</Code></Error>');
    const store = createGcsStore(client, 'bucket', { prefix: 'ferry' });
    const err = await store.put('packs/a', Buffer.from('x'), { ifNoneMatch: true }).catch((e: unknown) => e);
    expect(isFerryError(err, 'ALREADY_EXISTS')).toBe(true);
    const put = seen[0]!;
    expect(put.method).toBe('PUT');
    expect(put.path).toBe('/bucket/ferry/packs/a');
    expect(put.headers['x-goog-if-generation-match']).toBe('0');
    expect(put.headers['if-none-match']).toBeUndefined();
    expect(put.headers.authorization).toMatch(/SignedHeaders=[^,]*x-goog-if-generation-match/);
    expect(put.headers.authorization).toContain('/auto/s3/aws4_request');
  });

  it('sends plain puts without preconditions', async () => {
    const { client, seen } = recordingClient(200);
    await createGcsStore(client, 'bucket').put('a', Buffer.from('x'));
    expect(seen[0]?.headers['x-goog-if-generation-match']).toBeUndefined();
  });

  it('deletes with one DELETE per key (the XML API has no multi-object delete)', async () => {
    const { client, seen } = recordingClient(204);
    await createGcsStore(client, 'bucket').delete(['a', 'b', 'c']);
    expect(seen.map((s) => s.method)).toEqual(['DELETE', 'DELETE', 'DELETE']);
    expect(seen.map((s) => s.path).sort()).toEqual(['/bucket/a', '/bucket/b', '/bucket/c']);
    expect(seen.some((s) => 'delete' in s.query)).toBe(false);
  });

  it('reports itself as gs:// with atomic create', () => {
    const { client } = recordingClient(200);
    const store = createGcsStore(client, 'bucket', { prefix: '/x/' });
    expect(store.location).toBe('gs://bucket/x/');
    expect(store.conditionalCreate).toBe(true);
  });
});
