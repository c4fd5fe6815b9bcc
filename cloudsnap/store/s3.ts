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
import { FerryError, isFerryError } from '../../common/index.js';
import { forEachLimit } from './concurrency.js';
import { checkKey, checkPrefix, checkRange, normalizeStorePrefix, pageSize, rangePastEnd } from './keys.js';
import { IdleTimer, type ReadRetry, type ReadRetryOptions, readRetry, withReadRetry } from './read-retry.js';
import { ResumableRead } from './resumable-read.js';
import { DirectGet } from './s3-direct-get.js';
import { classifyS3Error, describeS3Error, translateS3Error } from './s3-errors.js';
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
  /**
   * Reads that break or stall (see ReadRetryOptions): attempts without progress (default 5), backoff, and the idle
   * timeout of a read (default 30000 ms). A read broken mid-body resumes from its first missing byte.
   */
  read?: ReadRetryOptions;
}

const BATCH = 1000;
/** Direct GETs in a row refused with an error status that the SDK then completed, after which the path rests. */
const DIRECT_MISSES = 3;
/** Milliseconds the direct path rests after DIRECT_MISSES before it is tried again. */
const DIRECT_REST_MS = 10 * 60_000;
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
  private readonly read: ReadRetry;
  /** The SDK-free GET path (s3-direct-get.ts), found on first use; undefined where it does not apply. */
  private direct: Promise<DirectGet | undefined> | undefined;
  private directMisses = 0;
  /** Until when (ms since the epoch) the direct path rests after DIRECT_MISSES. */
  private directRestsUntil = 0;

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
    this.read = readRetry(options.read);
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

  /**
   * Reads an object or a range of it. Every attempt reads its body too, so a reset mid-body, a stall (no bytes for
   * `read.idleTimeoutMs`), a 5xx or SlowDown are retried with backoff; an attempt after a broken body asks only for
   * the missing bytes, with If-Match the ETag of the first answer, so an object that changed between attempts fails
   * with FAILED_PRECONDITION instead of mixing two versions.
   */
  async get(key: string, options: GetOptions = {}): Promise<Buffer> {
    checkKey(key);
    const range = checkRange(options);
    const Key = this.prefix + key;
    const signal = options.signal;
    this.direct ??= DirectGet.for(this.client, this.read.idleTimeoutMs).catch(() => undefined);
    const direct = await this.direct;
    const state = new ResumableRead(`${Key} in bucket ${this.bucket}`, range, options.into);
    return withReadRetry(
      () => this.readOnce(key, Key, state, direct, signal),
      () => state.at,
      this.read,
      signal,
    );
  }

  /** One attempt: the direct path when it is in use, then the SDK for what it left (or for its error). */
  private async readOnce(
    key: string,
    Key: string,
    state: ResumableRead,
    direct: DirectGet | undefined,
    signal: AbortSignal | undefined,
  ): Promise<Buffer> {
    let refused = 0;
    if (direct !== undefined && Date.now() >= this.directRestsUntil) {
      // A fault of the direct path itself (a credential provider that throws) also falls through to the SDK.
      const outcome = await direct.read(this.bucket, Key, state, signal).catch((err: unknown) => {
        if (isFerryError(err, 'FAILED_PRECONDITION')) throw err;
        return { done: false, status: 0 } as const;
      });
      const bytes = outcome.done ? state.result() : undefined;
      if (bytes !== undefined) {
        this.directMisses = 0;
        return bytes;
      }
      if (!outcome.done) refused = outcome.status;
    }
    const bytes = await this.sdkRead(key, Key, state, signal);
    // The SDK read what the direct path was refused (a 4xx other than a missing key or range): this signer may not
    // suit the endpoint. Network faults, timeouts and 5xx say nothing about it.
    if (refused >= 400 && refused < 500 && ![404, 412, 416].includes(refused) && ++this.directMisses >= DIRECT_MISSES) {
      this.directMisses = 0;
      this.directRestsUntil = Date.now() + DIRECT_REST_MS;
    }
    return bytes;
  }

  /** One attempt through the SDK at what `state` still lacks, with an idle timeout over the answer and its body. */
  private async sdkRead(
    key: string,
    Key: string,
    state: ResumableRead,
    signal: AbortSignal | undefined,
  ): Promise<Buffer> {
    let body: Readable | undefined;
    const idle = new IdleTimer(this.read.idleTimeoutMs, `GET ${Key}`, signal, (reason) => body?.destroy(reason));
    try {
      const res = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key, Range: state.rangeHeader(), IfMatch: state.etag }),
        { abortSignal: idle.signal },
      );
      idle.touch();
      const status = res.$metadata.httpStatusCode ?? 0;
      const stream = res.Body instanceof Readable ? res.Body : undefined;
      body = stream;
      const length = res.ContentLength ?? 0;
      const into = state.accept(status, res.ETag, length);
      if (into === undefined) {
        // Not the answer asked for: a range the object does not fully hold (S3 answers with the bytes it has).
        stream?.destroy();
        if (state.range !== undefined && status === 206) throw rangePastEnd(key, state.range);
        throw new FerryError(
          'INTERNAL',
          `the endpoint answered HTTP ${status} to a read of ${Key}: expected ${state.rangeHeader() === undefined ? 200 : 206}`,
        );
      }
      if (into.length > 0) {
        if (stream === undefined) {
          const all = Buffer.from(
            await (res.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray(),
          );
          if (all.length !== into.length) throw new FerryError('UNAVAILABLE', `the body of ${Key} ended short: retry`);
          all.copy(into);
          state.advance(all.length);
        } else {
          await state.receive(stream, into, idle);
        }
      }
      signal?.throwIfAborted();
      return state.complete(Key);
    } catch (err: unknown) {
      if (idle.fired && !signal?.aborted) throw idle.reason;
      if (isFerryError(err)) throw err;
      if (state.etag !== undefined && describeS3Error(err).status === 412) throw state.changed();
      throw this.translate(err, Key, signal);
    } finally {
      idle.stop();
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
