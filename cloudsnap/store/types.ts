/**
 * The object-store contract every backend implements (directory, S3 and S3-compatible, Azure Blob, Google Cloud
 * Storage). Keys are '/'-separated paths relative to the store's root (bucket plus optional prefix). Every method
 * rejects with a FerryError: NOT_FOUND (missing key on get, missing bucket/container anywhere, naming it),
 * UNAUTHENTICATED or PERMISSION_DENIED (bad or insufficient credentials), ALREADY_EXISTS (conditional create of a key
 * that exists), UNAVAILABLE (network, timeouts, 5xx after retries), INTERNAL otherwise; the SDK error is the `cause`.
 */

export interface ObjectInfo {
  key: string;
  size: number;
  /** Entity tag as the store reports it (quotes removed), when it does. */
  etag?: string;
  lastModified?: Date;
}

export interface CallOptions {
  /** Aborts the call; forwarded to the SDK. */
  signal?: AbortSignal;
}

export interface PutOptions extends CallOptions {
  /** Create only: reject with ALREADY_EXISTS when the key exists (where the store offers it atomically). */
  ifNoneMatch?: boolean;
}

export interface GetOptions extends CallOptions {
  /** Byte range to read; the whole object when absent. A range past the end rejects with INVALID_ARGUMENT. */
  range?: { offset: number; length: number };
  /**
   * A buffer to read the body into when it fits (the result is then a view of its start), so a caller that reads
   * many ranges can reuse one buffer. A store may ignore it and return a new buffer.
   */
  into?: Buffer;
}

export interface ListOptions extends CallOptions {
  /** Continue from the token a previous page returned. */
  continuationToken?: string;
  /** Largest page (the store may return fewer); default 1000. */
  maxKeys?: number;
}

export interface ListPage {
  objects: ObjectInfo[];
  /** Token for the next page; absent on the last page. */
  continuationToken?: string;
}

export interface ObjectStore {
  /** Where the store points, for messages and logs, e.g. `s3://bucket/prefix` (never a secret). */
  readonly location: string;
  /** Whether `put(..., { ifNoneMatch: true })` is atomic on this store. */
  readonly conditionalCreate: boolean;
  put(key: string, body: Buffer, options?: PutOptions): Promise<void>;
  get(key: string, options?: GetOptions): Promise<Buffer>;
  /** Size and etag of a key, or undefined when it does not exist. */
  head(key: string, options?: CallOptions): Promise<ObjectInfo | undefined>;
  /** One page of the keys under `prefix`, in lexicographic order. */
  list(prefix: string, options?: ListOptions): Promise<ListPage>;
  /** Deletes keys in as few requests as the store allows (S3: 1000 per request); missing keys are not an error. */
  delete(keys: readonly string[], options?: CallOptions): Promise<void>;
}
