/**
 * An object store seen through a key prefix: `new PrefixedStore(store, 'kek-x')` reads and writes `kek-x/<key>` in
 * `store` and lists only under it, with the prefix removed from the keys it returns. KEK-override repositories live
 * under such a prefix of their credential's root (a plain key prefix works the same on every backend; a directory
 * store creates the sub-directory on the first write).
 */
import { checkKey } from './keys.js';
import type { CallOptions, GetOptions, ListOptions, ListPage, ObjectInfo, ObjectStore, PutOptions } from './types.js';

export class PrefixedStore implements ObjectStore {
  private readonly prefix: string;

  /** @param prefix A key-like path without a trailing '/', e.g. `kek-team-a`. */
  constructor(
    private readonly inner: ObjectStore,
    prefix: string,
  ) {
    checkKey(prefix, 'prefix');
    this.prefix = `${prefix}/`;
  }

  get location(): string {
    return `${this.inner.location.replace(/\/+$/, '')}/${this.prefix.slice(0, -1)}`;
  }

  get conditionalCreate(): boolean {
    return this.inner.conditionalCreate;
  }

  put(key: string, body: Buffer, options?: PutOptions): Promise<void> {
    return this.inner.put(this.prefix + key, body, options);
  }

  get(key: string, options?: GetOptions): Promise<Buffer> {
    return this.inner.get(this.prefix + key, options);
  }

  async head(key: string, options?: CallOptions): Promise<ObjectInfo | undefined> {
    const info = await this.inner.head(this.prefix + key, options);
    return info === undefined ? undefined : { ...info, key };
  }

  async list(prefix: string, options?: ListOptions): Promise<ListPage> {
    const page = await this.inner.list(this.prefix + prefix, options);
    return {
      objects: page.objects.map((o) => ({ ...o, key: o.key.slice(this.prefix.length) })),
      ...(page.continuationToken !== undefined && { continuationToken: page.continuationToken }),
    };
  }

  delete(keys: readonly string[], options?: CallOptions): Promise<void> {
    return this.inner.delete(
      keys.map((k) => this.prefix + k),
      options,
    );
  }
}
