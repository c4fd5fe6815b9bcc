import type {
  CallOptions,
  GetOptions,
  ListOptions,
  ListPage,
  ObjectInfo,
  ObjectStore,
  PutOptions,
} from '../../cloudsnap/index.js';

/**
 * An object store that hands every call to `inner`: tests extend it and override the one or two calls whose timing
 * they shape (held reads, gated uploads, slow transfers), instead of delegating each method by hand.
 */
export class DelegatingStore implements ObjectStore {
  constructor(protected readonly inner: ObjectStore) {}
  get location(): string {
    return this.inner.location;
  }
  get conditionalCreate(): boolean {
    return this.inner.conditionalCreate;
  }
  put(key: string, body: Buffer, options?: PutOptions): Promise<void> {
    return this.inner.put(key, body, options);
  }
  get(key: string, options?: GetOptions): Promise<Buffer> {
    return this.inner.get(key, options);
  }
  head(key: string, options?: CallOptions): Promise<ObjectInfo | undefined> {
    return this.inner.head(key, options);
  }
  list(prefix: string, options?: ListOptions): Promise<ListPage> {
    return this.inner.list(prefix, options);
  }
  delete(keys: readonly string[], options?: CallOptions): Promise<void> {
    return this.inner.delete(keys, options);
  }
}
