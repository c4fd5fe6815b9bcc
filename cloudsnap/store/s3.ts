import { Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { FerryError } from '../../common/errors.js';
import { forEachLimit } from './concurrency.js';
import { bodyBuffer, checkKey, checkPrefix, checkRange, normalizeStorePrefix, pageSize, rangePastEnd } from './keys.js';
import { DirectGet } from './s3-direct-get.js';
import { classifyS3Error, translateS3Error } from './s3-errors.js';
import type { CallOptions, GetOptions, ListOptions, ListPage, ObjectInfo, ObjectStore, PutOptions } from './types.js';

/** How an endpoint is asked to create an object only if it does not exist. */
export type S3CreateOnly = 'if-none-match' | 'x-goog-if-generation-match' | 'none';

/** Options of an S3Store. */
export interface S3StoreOptions {
  /** Key prefix inside the bucket, e.g. 'ferry/cluster-a'; default none (the bucket's root). */
  prefix?: string;
  /**
   * How create-only puts are sent. 'if-none-match' (default): `If-None-Match: *` (AWS S3; radosgw 16.2 honours it,
   * measured by the conformance suite). 'x-goog-if-generation-match': `x-goog-if-generation-match: 0`, the Google
   * Cloud Storage XML API's precondition. 'none': the endpoint has no conditional put; a head then a put, which is
   * not atomic (`conditionalCreate` is false).
   */
  createOnly?: S3CreateOnly;
  /** Whether the endpoint offers DeleteObjects (multi-object delete); default true. GCS's XML API does not. */
  multiObjectDelete?: boolean;
  /** Requests in flight for deletes (DeleteObjects batches, or single deletes); default 8. */
  deleteConcurrency?: number;
  /** URL scheme shown in `location`; default 's3'. */
  scheme?: string;
}

const BATCH = 1000;
/** Direct GETs that the SDK then completed, after which a store stops trying the direct path. */
const DIRECT_MISSES = 3;
const BUCKET_CHECK_TTL_MS = 30_000;

/** An object store in an S3 (or S3-compatible) bucket, through a client the caller builds (see createS3Client). */
export class S3Store implements ObjectStore {
  readonly location: string;
  readonly conditionalCreate: boolean;
  private readonly prefix: string;
  private readonly createOnly: S3CreateOnly;
  private readonly multiObjectDelete: boolean;
  private readonly deleteConcurrency: number;
  private bucketSeenAt = 0;
  /** The SDK-free GET path (s3-direct-get.ts), found on first use; undefined where it does not apply or was dropped. */
  private direct: Promise<DirectGet | undefined> | undefined;
  private directMisses = 0;

  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
    options: S3StoreOptions = {},
  ) {
    this.prefix = normalizeStorePrefix(options.prefix);
    this.createOnly = options.createOnly ?? 'if-none-match';
    this.multiObjectDelete = options.multiObjectDelete ?? true;
    this.deleteConcurrency = options.deleteConcurrency ?? 8;
    this.conditionalCreate = this.createOnly !== 'none';
    this.location = `${options.scheme ?? 's3'}://${bucket}/${this.prefix}`;
  }

  async put(key: string, body: Buffer, options: PutOptions = {}): Promise<void> {
    checkKey(key);
    const Key = this.prefix + key;
    const abortSignal = options.signal;
    try {
      if (options.ifNoneMatch && this.createOnly === 'none' && (await this.head(key, options)) !== undefined) {
        throw new FerryError('ALREADY_EXISTS', `${Key} already exists in bucket ${this.bucket}: choose another key`);
      }
      const conditional = options.ifNoneMatch === true && this.createOnly !== 'none';
      const command = new PutObjectCommand({
        Bucket: this.bucket,
        Key,
        Body: body,
        ContentLength: body.length,
        IfNoneMatch: conditional && this.createOnly === 'if-none-match' ? '*' : undefined,
      });
      if (conditional && this.createOnly === 'x-goog-if-generation-match') {
        // Added before signing, so the header is part of the SigV4 signature as GCS requires.
        command.middlewareStack.add(
          (next) => (args) => {
            const request: unknown = args.request;
            if (typeof request === 'object' && request !== null && 'headers' in request) {
              const headers: unknown = request.headers;
              if (typeof headers === 'object' && headers !== null) {
                Object.assign(headers, { 'x-goog-if-generation-match': '0' });
              }
            }
            return next(args);
          },
          { step: 'build', name: 'ferryGoogCreateOnly' },
        );
      }
      await this.client.send(command, { abortSignal });
    } catch (err: unknown) {
      throw this.translate(err, Key, abortSignal);
    }
  }

  async get(key: string, options: GetOptions = {}): Promise<Buffer> {
    checkKey(key);
    const range = checkRange(options);
    const Key = this.prefix + key;
    const abortSignal = options.signal;
    this.direct ??= DirectGet.for(this.client).catch(() => undefined);
    const direct = await this.direct;
    if (direct !== undefined) {
      // A fault of the direct path itself (a credential provider that throws) also falls through to the SDK.
      const bytes = await direct.get(this.bucket, Key, range, options.into, abortSignal).catch(() => undefined);
      if (bytes !== undefined) return bytes;
    }
    try {
      const res = await this.client.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key,
          Range: range === undefined ? undefined : `bytes=${range.offset}-${range.offset + range.length - 1}`,
        }),
        { abortSignal },
      );
      const expected = range?.length ?? res.ContentLength;
      const bytes =
        res.Body === undefined
          ? Buffer.alloc(0)
          : expected !== undefined && res.Body instanceof Readable
            ? await readExactly(res.Body, expected, options.into)
            : Buffer.from(await res.Body.transformToByteArray());
      abortSignal?.throwIfAborted();
      // S3 answers a range that starts inside the object but ends past it with the bytes it has.
      if (range !== undefined && bytes.length !== range.length) throw rangePastEnd(key, range);
      if (direct !== undefined && ++this.directMisses >= DIRECT_MISSES) this.direct = Promise.resolve(undefined);
      return bytes;
    } catch (err: unknown) {
      throw this.translate(err, Key, abortSignal);
    }
  }

  async head(key: string, options: CallOptions = {}): Promise<ObjectInfo | undefined> {
    checkKey(key);
    const Key = this.prefix + key;
    const abortSignal = options.signal;
    try {
      const res = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key }), { abortSignal });
      this.bucketSeenAt = Date.now();
      return { key, size: res.ContentLength ?? 0, etag: unquote(res.ETag), lastModified: res.LastModified };
    } catch (err: unknown) {
      const translated = this.translate(err, Key, abortSignal);
      if (!(translated instanceof FerryError) || translated.code !== 'NOT_FOUND') throw translated;
      // A HEAD answer has no body, so a missing bucket looks like a missing key: ask about the bucket.
      await this.checkBucket(abortSignal);
      return undefined;
    }
  }

  async list(prefix: string, options: ListOptions = {}): Promise<ListPage> {
    checkPrefix(prefix);
    const abortSignal = options.signal;
    try {
      const res = await this.client.send(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: this.prefix + prefix,
          ContinuationToken: options.continuationToken,
          MaxKeys: pageSize(options.maxKeys),
        }),
        { abortSignal },
      );
      const objects = (res.Contents ?? []).map((o) => ({
        key: (o.Key ?? '').slice(this.prefix.length),
        size: o.Size ?? 0,
        etag: unquote(o.ETag),
        lastModified: o.LastModified,
      }));
      if (res.IsTruncated === true && res.NextContinuationToken === undefined) {
        throw new FerryError('INTERNAL', `${this.location}: the endpoint truncated a listing without a token`);
      }
      return { objects, continuationToken: res.IsTruncated === true ? res.NextContinuationToken : undefined };
    } catch (err: unknown) {
      throw this.translate(err, undefined, abortSignal);
    }
  }

  async delete(keys: readonly string[], options: CallOptions = {}): Promise<void> {
    for (const key of keys) checkKey(key);
    const abortSignal = options.signal;
    abortSignal?.throwIfAborted();
    const full = keys.map((k) => this.prefix + k);
    // One key: a plain DELETE, which a Ceph RGW answered in a fraction of the time of a multi-object delete (about
    // 50 ms for one key on loopback), and a backup deletes its running marker on its way out.
    if (!this.multiObjectDelete || full.length === 1) {
      await forEachLimit(full, this.deleteConcurrency, (Key) => this.deleteOne(Key, abortSignal), abortSignal);
      return;
    }
    const batches: string[][] = [];
    for (let i = 0; i < full.length; i += BATCH) batches.push(full.slice(i, i + BATCH));
    await forEachLimit(batches, this.deleteConcurrency, (batch) => this.deleteBatch(batch, abortSignal), abortSignal);
  }

  private async deleteOne(Key: string, abortSignal: AbortSignal | undefined): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key }), { abortSignal });
    } catch (err: unknown) {
      const translated = this.translate(err, Key, abortSignal);
      // S3 answers 204 for a missing key; some servers answer NoSuchKey, which is not an error here.
      if (translated instanceof FerryError && translated.code === 'NOT_FOUND' && !isNoSuchBucket(err)) return;
      throw translated;
    }
  }

  private async deleteBatch(batch: string[], abortSignal: AbortSignal | undefined): Promise<void> {
    let errors: { Key?: string; Code?: string; Message?: string }[];
    try {
      const res = await this.client.send(
        new DeleteObjectsCommand({
          Bucket: this.bucket,
          Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
        }),
        { abortSignal },
      );
      errors = (res.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey');
    } catch (err: unknown) {
      throw this.translate(err, undefined, abortSignal);
    }
    const first = errors[0];
    if (first === undefined) return;
    const { code, message } = classifyS3Error(first.Code ?? 'Error', undefined, undefined, {
      bucket: this.bucket,
      key: first.Key,
      location: this.location,
    });
    throw new FerryError(code, `${errors.length} of ${batch.length} deletes failed; first: ${message}`, {
      cause: errors,
    });
  }

  private async checkBucket(abortSignal: AbortSignal | undefined): Promise<void> {
    if (Date.now() - this.bucketSeenAt < BUCKET_CHECK_TTL_MS) return;
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }), { abortSignal });
      this.bucketSeenAt = Date.now();
    } catch (err: unknown) {
      const translated = this.translate(err, undefined, abortSignal);
      if (translated instanceof FerryError && translated.code === 'NOT_FOUND') {
        throw new FerryError('NOT_FOUND', `bucket ${this.bucket} does not exist: create it or fix the bucket name`, {
          cause: err,
        });
      }
      throw translated;
    }
  }

  private translate(err: unknown, key: string | undefined, signal: AbortSignal | undefined): unknown {
    return translateS3Error(err, { bucket: this.bucket, key, location: this.location, signal });
  }
}

function unquote(etag: string | undefined): string | undefined {
  return etag?.replace(/^"|"$/g, '');
}

function isNoSuchBucket(err: unknown): boolean {
  return typeof err === 'object' && err !== null && 'name' in err && err.name === 'NoSuchBucket';
}

/**
 * A response body read into one buffer of the length the response announced (a ranged read's length), as it
 * arrives: no list of chunks and no second copy, as the SDK's `transformToByteArray` makes. A body of another length
 * comes back at its true length, for the caller's checks.
 */
async function readExactly(body: Readable, length: number, into?: Buffer): Promise<Buffer> {
  const out = bodyBuffer(length, into);
  let at = 0;
  let extra: Buffer[] | undefined;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    if (extra === undefined && at + chunk.length <= length) {
      chunk.copy(out, at);
      at += chunk.length;
    } else {
      extra ??= [out.subarray(0, at)];
      extra.push(chunk);
    }
  }
  return extra === undefined ? out.subarray(0, at) : Buffer.concat(extra);
}
