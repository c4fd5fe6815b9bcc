/**
 * Ownership records in the cluster store, one per resource: `/ferry/ownership/<kind>/<id>` holding an Ownership. A
 * restore records its new volume's owner under `/ferry/ownership/volume-name/<name>` until the volume has an id; a
 * lookup of that volume finds it there. Deleting a resource deletes its records.
 */
import type { ClusterStore, StoreOp } from '../../node/index.js';
import type { Ownership, ResourceKind, ResourceRef } from './ownership.js';

/** What ownership records need of a store: the cluster store's get and commit. */
export type OwnershipBackend = Pick<ClusterStore, 'get' | 'commit'>;

/** Key prefix of ownership records. */
export const OWNERSHIP_PREFIX = '/ferry/ownership/';

function keyOf(kind: ResourceKind | 'volume-name', id: string): string {
  return `${OWNERSHIP_PREFIX}${kind}/${encodeURIComponent(id)}`;
}

/** Reads and writes ownership records. */
export class OwnershipStore {
  constructor(private readonly store: OwnershipBackend) {}

  /** The ownership of `ref`, or undefined when it has none. */
  async get(ref: ResourceRef): Promise<Ownership | undefined> {
    const found = await this.store.get<Ownership>(keyOf(ref.kind, ref.id));
    if (found !== undefined || ref.kind !== 'volume' || ref.name === undefined) return found;
    return this.store.get<Ownership>(keyOf('volume-name', ref.name));
  }

  /** Records the ownership of `ref` (replacing any); for a volume, drops a record kept under its name. */
  async set(ref: ResourceRef, ownership: Ownership): Promise<void> {
    const ops: StoreOp[] = [{ op: 'put', key: keyOf(ref.kind, ref.id), value: ownership }];
    if (ref.kind === 'volume' && ref.name !== undefined && ref.name !== ref.id) {
      ops.push({ op: 'delete', key: keyOf('volume-name', ref.name) });
    }
    await this.store.commit(ops);
  }

  /** Records the owner of a volume a restore is about to create under `name`. */
  async setPendingVolume(name: string, ownership: Ownership): Promise<void> {
    await this.store.commit([{ op: 'put', key: keyOf('volume-name', name), value: ownership }]);
  }

  /** Deletes the records of `ref` (for a volume, also the one under its name). */
  async delete(ref: ResourceRef): Promise<void> {
    const ops: StoreOp[] = [{ op: 'delete', key: keyOf(ref.kind, ref.id) }];
    if (ref.kind === 'volume' && ref.name !== undefined)
      ops.push({ op: 'delete', key: keyOf('volume-name', ref.name) });
    await this.store.commit(ops);
  }
}
