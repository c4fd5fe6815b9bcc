/**
 * An object store that reports each request it passes on (provider, operation, outcome, bytes, duration) to an
 * observer, for the node's metrics. It changes nothing about the requests: results and errors go through as they are.
 */
import { isFerryError } from '../../common/index.js';
import type { CallOptions, GetOptions, ListOptions, ListPage, ObjectInfo, ObjectStore, PutOptions } from './types.js';

/** The ObjectStore methods, as metrics name them. */
export type StoreOperation = 'put' | 'get' | 'head' | 'list' | 'delete';

/** One finished object-store request. */
export interface StoreRequest {
  /** The credential's provider: `directory`, `s3`, `azure` or `google`. */
  provider: string;
  operation: StoreOperation;
  /** The FerryError code of a failed request (`INTERNAL` for anything else thrown); undefined when it succeeded. */
  error: string | undefined;
  /** Bytes sent (put) or received (get); 0 for the other operations and for failures. */
  bytes: number;
  /** How long the request took, in seconds. */
  seconds: number;
}

/** Receives each request a MeteredStore passes on. It must not throw (what it throws is ignored). */
export type StoreObserver = (request: StoreRequest) => void;

/** Wraps `inner` and tells `observe` about every request. */
export class MeteredStore implements ObjectStore {
  constructor(
    private readonly inner: ObjectStore,
    private readonly provider: string,
    private readonly observe: StoreObserver,
  ) {}

  get location(): string {
    return this.inner.location;
  }

  get conditionalCreate(): boolean {
    return this.inner.conditionalCreate;
  }

  put(key: string, body: Buffer, options?: PutOptions): Promise<void> {
    return this.measure(
      'put',
      () => this.inner.put(key, body, options),
      () => body.length,
    );
  }

  get(key: string, options?: GetOptions): Promise<Buffer> {
    return this.measure(
      'get',
      () => this.inner.get(key, options),
      (b) => b.length,
    );
  }

  head(key: string, options?: CallOptions): Promise<ObjectInfo | undefined> {
    return this.measure('head', () => this.inner.head(key, options));
  }

  list(prefix: string, options?: ListOptions): Promise<ListPage> {
    return this.measure('list', () => this.inner.list(prefix, options));
  }

  delete(keys: readonly string[], options?: CallOptions): Promise<void> {
    return this.measure('delete', () => this.inner.delete(keys, options));
  }

  private async measure<T>(
    operation: StoreOperation,
    call: () => Promise<T>,
    bytesOf: (result: T) => number = () => 0,
  ): Promise<T> {
    const started = process.hrtime.bigint();
    const seconds = (): number => Number(process.hrtime.bigint() - started) / 1e9;
    let result: T;
    try {
      result = await call();
    } catch (err: unknown) {
      const error = isFerryError(err) ? err.code : 'INTERNAL';
      this.report({ provider: this.provider, operation, error, bytes: 0, seconds: seconds() });
      throw err;
    }
    this.report({ provider: this.provider, operation, error: undefined, bytes: bytesOf(result), seconds: seconds() });
    return result;
  }

  private report(request: StoreRequest): void {
    try {
      this.observe(request);
    } catch {
      // Metrics never break a backup.
    }
  }
}
