import type { BlobClient, ContainerClient } from '@azure/storage-blob';
import { FerryError } from '../../common/errors.js';
import { classifyAzureError, describeAzureError, translateAzureError } from './azure-errors.js';
import { forEachLimit } from './concurrency.js';
import { checkKey, checkPrefix, checkRange, normalizeStorePrefix, pageSize, rangePastEnd } from './keys.js';
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
  private containerSeenAt = 0;

  constructor(
    private readonly container: ContainerClient,
    options: AzureBlobStoreOptions = {},
  ) {
    this.prefix = normalizeStorePrefix(options.prefix);
    this.batchDelete = options.batchDelete ?? true;
    this.deleteConcurrency = options.deleteConcurrency ?? 8;
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

  async get(key: string, options: GetOptions = {}): Promise<Buffer> {
    checkKey(key);
    const range = checkRange(options);
    const name = this.prefix + key;
    const abortSignal = options.signal;
    try {
      const blob = this.container.getBlobClient(name);
      const res =
        range === undefined
          ? await blob.download(undefined, undefined, { abortSignal })
          : await blob.download(range.offset, range.length, { abortSignal });
      const body = await readAll(res.readableStreamBody, abortSignal);
      // Azure answers a range that starts inside the blob but ends past it with the bytes it has.
      if (range !== undefined && body.length !== range.length) throw rangePastEnd(key, range);
      return body;
    } catch (err: unknown) {
      throw this.translate(err, name, abortSignal);
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

async function readAll(stream: NodeJS.ReadableStream | undefined, signal: AbortSignal | undefined): Promise<Buffer> {
  if (stream === undefined) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  for await (const chunk of stream) {
    signal?.throwIfAborted();
    chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  }
  return Buffer.concat(chunks);
}

function unquote(etag: string | undefined): string | undefined {
  return etag?.replace(/^"|"$/g, '');
}
