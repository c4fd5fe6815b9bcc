import type { Readable } from 'node:stream';
import type { BlobClient, ContainerClient } from '@azure/storage-blob';
import { FerryError, isFerryError } from '../../common/index.js';
import { classifyAzureError, describeAzureError, translateAzureError } from './azure-errors.js';
import { forEachLimit } from './concurrency.js';
import { checkKey, checkPrefix, checkRange, normalizeStorePrefix, pageSize, rangePastEnd } from './keys.js';
import { IdleTimer, type ReadRetry, type ReadRetryOptions, readRetry, withReadRetry } from './read-retry.js';
import { ResumableRead } from './resumable-read.js';
import type { CallOptions, GetOptions, ListOptions, ListPage, ObjectInfo, ObjectStore, PutOptions } from './types.js';

/** Options of an AzureBlobStore. */
export interface AzureBlobStoreOptions {
  /** Blob name prefix inside the container, e.g. 'ferry/cluster-a'; default none. */
  prefix?: string;
  /**
   * Delete with Blob Batch requests (256 blobs each); default true. When a batch request is refused as a whole
   * (an endpoint without batch support), the store falls back to single deletes and stays with them.
   */
  batchDelete?: boolean;
  /** Requests in flight for deletes; default 8. */
  deleteConcurrency?: number;
  /**
   * Reads that break or stall (see ReadRetryOptions): attempts without progress (default 5), backoff, and the idle
   * timeout of a read (default 30000 ms). A read broken mid-body resumes from its first missing byte.
   */
  read?: ReadRetryOptions;
}

const BATCH = 256; // the Blob Batch limit
const CONTAINER_CHECK_TTL_MS = 30_000;

/** An object store in an Azure Blob Storage container, through a ContainerClient the caller builds. */
export class AzureBlobStore implements ObjectStore {
  readonly location: string;
  /** Create-only puts send `If-None-Match: *`, which Azure Blob Storage (and Azurite) enforce atomically. */
  readonly conditionalCreate = true;
  private readonly prefix: string;
  private batchDelete: boolean;
  private readonly deleteConcurrency: number;
  private readonly read: ReadRetry;
  private containerSeenAt = 0;

  constructor(
    private readonly container: ContainerClient,
    options: AzureBlobStoreOptions = {},
  ) {
    this.prefix = normalizeStorePrefix(options.prefix);
    this.batchDelete = options.batchDelete ?? true;
    this.deleteConcurrency = options.deleteConcurrency ?? 8;
    this.read = readRetry(options.read);
    this.location = `azure://${container.containerName}/${this.prefix}`;
  }

  async put(key: string, body: Buffer, options: PutOptions = {}): Promise<void> {
    checkKey(key);
    const name = this.prefix + key;
    const abortSignal = options.signal;
    try {
      await this.container.getBlockBlobClient(name).uploadData(body, {
        abortSignal,
        conditions: options.ifNoneMatch ? { ifNoneMatch: '*' } : undefined,
      });
    } catch (err: unknown) {
      throw this.translate(err, name, abortSignal);
    }
  }

  /**
   * Reads a blob or a range of it. Every attempt reads its body too: a break or a stall (no bytes for
   * `read.idleTimeoutMs`) is retried with backoff from the first missing byte, with If-Match the ETag of the first
   * answer, so a blob that changed between attempts fails with FAILED_PRECONDITION. (The SDK also resumes a broken
   * body itself, `maxRetryRequests`, with the same condition.)
   */
  async get(key: string, options: GetOptions = {}): Promise<Buffer> {
    checkKey(key);
    const range = checkRange(options);
    const name = this.prefix + key;
    const signal = options.signal;
    const state = new ResumableRead(`${name} in container ${this.container.containerName}`, range, options.into);
    return withReadRetry(
      () => this.readOnce(key, name, state, signal),
      () => state.at,
      this.read,
      signal,
    );
  }

  private async readOnce(key: string, name: string, state: ResumableRead, signal: AbortSignal | undefined) {
    let body: Readable | undefined;
    const idle = new IdleTimer(this.read.idleTimeoutMs, `GET ${name}`, signal, (reason) => body?.destroy(reason));
    try {
      const next = state.nextRange();
      const res = await this.container.getBlobClient(name).download(next?.offset, next?.count, {
        abortSignal: idle.signal,
        conditions: state.etag === undefined ? undefined : { ifMatch: state.etag },
      });
      idle.touch();
      const stream = res.readableStreamBody as Readable | undefined;
      body = stream;
      const into = state.accept(res._response.status, res.etag, res.contentLength ?? 0);
      if (into === undefined) {
        stream?.destroy();
        // Azure answers a range that starts inside the blob but ends past it with the bytes it has.
        if (state.range !== undefined && res._response.status === 206) throw rangePastEnd(key, state.range);
        throw new FerryError('INTERNAL', `the endpoint answered HTTP ${res._response.status} to a read of ${name}`);
      }
      if (into.length > 0 && stream !== undefined) await state.receive(stream, into, idle);
      signal?.throwIfAborted();
      return state.complete(name);
    } catch (err: unknown) {
      if (idle.fired && !signal?.aborted) throw idle.reason;
      if (isFerryError(err)) throw err;
      if (state.etag !== undefined && describeAzureError(err).status === 412) throw state.changed();
      throw this.translate(err, name, signal);
    } finally {
      idle.stop();
    }
  }

  async head(key: string, options: CallOptions = {}): Promise<ObjectInfo | undefined> {
    checkKey(key);
    const name = this.prefix + key;
    const abortSignal = options.signal;
    try {
      const p = await this.container.getBlobClient(name).getProperties({ abortSignal });
      this.containerSeenAt = Date.now();
      return { key, size: p.contentLength ?? 0, etag: unquote(p.etag), lastModified: p.lastModified };
    } catch (err: unknown) {
      const { code, status } = describeAzureError(err);
      if (code === 'BlobNotFound' || (status === 404 && code === undefined)) return undefined;
      throw this.translate(err, name, abortSignal);
    }
  }

  async list(prefix: string, options: ListOptions = {}): Promise<ListPage> {
    checkPrefix(prefix);
    const abortSignal = options.signal;
    try {
      const pages = this.container
        .listBlobsFlat({ prefix: this.prefix + prefix, abortSignal })
        .byPage({ continuationToken: options.continuationToken, maxPageSize: pageSize(options.maxKeys) });
      const { value, done } = await pages.next();
      if (done === true || value === undefined) return { objects: [] };
      const objects = value.segment.blobItems.map((b) => ({
        key: b.name.slice(this.prefix.length),
        size: b.properties.contentLength ?? 0,
        etag: unquote(b.properties.etag),
        lastModified: b.properties.lastModified,
      }));
      const token = value.continuationToken;
      return { objects, continuationToken: token === undefined || token === '' ? undefined : token };
    } catch (err: unknown) {
      throw this.translate(err, undefined, abortSignal);
    }
  }

  async delete(keys: readonly string[], options: CallOptions = {}): Promise<void> {
    for (const key of keys) checkKey(key);
    const abortSignal = options.signal;
    abortSignal?.throwIfAborted();
    if (keys.length === 0) return;
    await this.checkContainer(abortSignal); // a single delete of a missing blob cannot tell a missing container
    const blobs = keys.map((k) => this.container.getBlobClient(this.prefix + k));
    if (this.batchDelete) {
      const batches: BlobClient[][] = [];
      for (let i = 0; i < blobs.length; i += BATCH) batches.push(blobs.slice(i, i + BATCH));
      const failed: BlobClient[][] = [];
      await forEachLimit(
        batches,
        this.deleteConcurrency,
        async (batch) => {
          if (!(await this.deleteBatch(batch, abortSignal))) failed.push(batch);
        },
        abortSignal,
      );
      if (failed.length === 0) return;
      blobs.splice(0, blobs.length, ...failed.flat());
    }
    await forEachLimit(blobs, this.deleteConcurrency, (blob) => this.deleteOne(blob, abortSignal), abortSignal);
  }

  /** Deletes one batch; false when the endpoint refused batching as a whole (the caller deletes one by one). */
  private async deleteBatch(batch: BlobClient[], abortSignal: AbortSignal | undefined): Promise<boolean> {
    let res: Awaited<ReturnType<ReturnType<ContainerClient['getBlobBatchClient']>['deleteBlobs']>>;
    try {
      res = await this.container.getBlobBatchClient().deleteBlobs(batch, { abortSignal });
    } catch (err: unknown) {
      const translated = this.translate(err, undefined, abortSignal);
      if (translated instanceof FerryError && translated.code === 'INTERNAL') {
        this.batchDelete = false; // e.g. 400/501 from an endpoint without Blob Batch
        return false;
      }
      throw translated;
    }
    const errors = res.subResponses.filter((s) => s.status >= 300 && s.errorCode !== 'BlobNotFound');
    const first = errors[0];
    if (first === undefined) return true;
    const { code, message } = classifyAzureError(first.errorCode, first.status, {
      container: this.container.containerName,
      blob: first._request.url,
      location: this.location,
    });
    throw new FerryError(code, `${errors.length} of ${batch.length} deletes failed; first: ${message}`, {
      cause: errors.map((e) => ({ status: e.status, errorCode: e.errorCode, url: e._request.url })),
    });
  }

  private async deleteOne(blob: BlobClient, abortSignal: AbortSignal | undefined): Promise<void> {
    try {
      await blob.deleteIfExists({ abortSignal });
    } catch (err: unknown) {
      throw this.translate(err, blob.name, abortSignal);
    }
  }

  private async checkContainer(abortSignal: AbortSignal | undefined): Promise<void> {
    if (Date.now() - this.containerSeenAt < CONTAINER_CHECK_TTL_MS) return;
    try {
      await this.container.getProperties({ abortSignal });
      this.containerSeenAt = Date.now();
    } catch (err: unknown) {
      throw this.translate(err, undefined, abortSignal);
    }
  }

  private translate(err: unknown, blob: string | undefined, signal: AbortSignal | undefined): unknown {
    return translateAzureError(err, { container: this.container.containerName, blob, location: this.location, signal });
  }
}

function unquote(etag: string | undefined): string | undefined {
  return etag?.replace(/^"|"$/g, '');
}
