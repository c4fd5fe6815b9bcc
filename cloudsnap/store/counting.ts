import type { CallOptions, GetOptions, ListOptions, ListPage, ObjectInfo, ObjectStore, PutOptions } from './types.js';

/** Requests made through a store, by kind. */
export interface RequestCounts {
  put: number;
  get: number;
  head: number;
  list: number;
  delete: number;
  bytesUp: number;
  bytesDown: number;
}

/** Wraps a store and counts its requests (for progress, metrics and benchmarks). */
export class CountingStore implements ObjectStore {
  readonly counts: RequestCounts = { put: 0, get: 0, head: 0, list: 0, delete: 0, bytesUp: 0, bytesDown: 0 };

  constructor(private readonly inner: ObjectStore) {}

  get location(): string {
    return this.inner.location;
  }

  get conditionalCreate(): boolean {
    return this.inner.conditionalCreate;
  }

  async put(key: string, body: Buffer, options?: PutOptions): Promise<void> {
    this.counts.put++;
    this.counts.bytesUp += body.length;
    await this.inner.put(key, body, options);
  }

  async get(key: string, options?: GetOptions): Promise<Buffer> {
    this.counts.get++;
    const b = await this.inner.get(key, options);
    this.counts.bytesDown += b.length;
    return b;
  }

  head(key: string, options?: CallOptions): Promise<ObjectInfo | undefined> {
    this.counts.head++;
    return this.inner.head(key, options);
  }

  list(prefix: string, options?: ListOptions): Promise<ListPage> {
    this.counts.list++;
    return this.inner.list(prefix, options);
  }

  async delete(keys: readonly string[], options?: CallOptions): Promise<void> {
    this.counts.delete += Math.ceil(keys.length / 1000);
    await this.inner.delete(keys, options);
  }
}
