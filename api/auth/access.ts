/**
 * Ownership checks for the routes: may this caller use this resource at this access type, which of these resources
 * may it see, and who owns what it just made. When the app runs without authentication there is no principal and
 * everything is allowed (and nothing recorded).
 */
import type { Context } from 'hono';
import { FerryError } from '../../common/index.js';
import { principalOf } from './context.js';
import { type AccessType, type Ownership, permits, type ResourceRef } from './ownership.js';
import type { OwnershipStore } from './ownership-store.js';
import { isAdmin, type Principal } from './principal.js';

function describe(ref: ResourceRef): string {
  return `${ref.kind} ${ref.name ?? ref.id}`;
}

/** Ownership decisions for one app. */
export class ResourceAccess {
  constructor(readonly records: OwnershipStore) {}

  /** Whether the caller of `c` may use `ref` at `need`. */
  async allowed(c: Context, ref: ResourceRef, need: AccessType): Promise<boolean> {
    const principal = principalOf(c);
    if (principal === undefined || isAdmin(principal)) return true;
    return permits(principal, await this.records.get(ref), need);
  }

  /** PERMISSION_DENIED unless the caller of `c` may use `ref` at `need`. */
  async require(c: Context, ref: ResourceRef, need: AccessType): Promise<void> {
    if (await this.allowed(c, ref, need)) return;
    const who = principalOf(c)?.sub ?? 'the caller';
    throw new FerryError('PERMISSION_DENIED', `${who} has no ${need} access to ${describe(ref)}; ask its owner`);
  }

  /** Whether the caller is a `system.admin` (or the app runs without authentication). */
  isAdmin(c: Context): boolean {
    const principal = principalOf(c);
    return principal === undefined || isAdmin(principal);
  }

  /** PERMISSION_DENIED unless the caller is a `system.admin` (or the app runs without authentication). */
  requireAdmin(c: Context): void {
    const principal = principalOf(c);
    if (principal === undefined || isAdmin(principal)) return;
    throw new FerryError('PERMISSION_DENIED', `${principal.sub} is not a system.admin; only admins may do this`);
  }

  /** The items the caller may use at `need` (default Read), in their order. */
  async filter<T>(c: Context, items: readonly T[], refOf: (item: T) => ResourceRef, need: AccessType = 'Read') {
    const principal = principalOf(c);
    if (principal === undefined || isAdmin(principal)) return [...items];
    const keep = await Promise.all(
      items.map(async (item) => permits(principal, await this.records.get(refOf(item)), need)),
    );
    return items.filter((_item, i) => keep[i]);
  }

  /** Records the caller as the owner of `ref`, which it has just created. */
  async own(c: Context, ref: ResourceRef): Promise<void> {
    const principal = principalOf(c);
    if (principal !== undefined) await this.records.set(ref, { owner: principal.sub });
  }

  /** Records the caller as the owner of the volume a restore will create under `name`. */
  async ownPendingVolume(c: Context, name: string): Promise<void> {
    const principal = principalOf(c);
    if (principal !== undefined) await this.records.setPendingVolume(name, { owner: principal.sub });
  }

  /** Deletes the records of a resource that is gone. */
  forget(ref: ResourceRef): Promise<void> {
    return this.records.delete(ref);
  }

  /** The ownership of `ref`. */
  ownership(ref: ResourceRef): Promise<Ownership | undefined> {
    return this.records.get(ref);
  }

  /** The caller, when authentication is on. */
  principal(c: Context): Principal | undefined {
    return principalOf(c);
  }
}
