/**
 * Ownership of a resource, after OpenStorage's `Ownership` message (api/api.proto): an `owner` (the `sub` of whoever
 * created it) and `acls` sharing it with groups, collaborators, or everyone, each at an access type. Access types
 * nest: Admin includes Write, Write includes Read. The owner has Admin; `system.admin` has everything.
 */
import { z } from 'zod';
import { isAdmin, type Principal, ROLE_ADMIN, ROLE_USER } from './principal.js';

/** Ownership.AccessType by its proto names: Read (0), Write (1), Admin (2). */
export const ACCESS_TYPES = ['Read', 'Write', 'Admin'] as const;
export type AccessType = (typeof ACCESS_TYPES)[number];

/** Ownership.AccessControl: who else may use the resource, and how far. `*` as a key matches everyone. */
export interface AccessControl {
  /** Group name (as in the token's `groups`) -> access type. */
  groups?: Record<string, AccessType>;
  /** User name (a token's `sub`) -> access type. */
  collaborators?: Record<string, AccessType>;
  /** Access type of every authenticated caller (Ownership.PublicAccessControl). */
  public?: { type: AccessType };
}

/** Ownership: the owner's user name and the ACLs. */
export interface Ownership {
  owner: string;
  acls?: AccessControl;
}

/** The kinds of resources that carry ownership records (snapshots take their volume's, backups their credential's). */
export type ResourceKind = 'volume' | 'credential' | 'task' | 'schedule';

/** A resource whose ownership is checked: its kind, its id, and for volumes its name. */
export interface ResourceRef {
  kind: ResourceKind;
  id: string;
  /** Volumes: the name, under which a restore that has not yet created its volume records the owner. */
  name?: string;
}

function rank(type: AccessType | undefined): number {
  return type === undefined ? -1 : ACCESS_TYPES.indexOf(type);
}

/** The highest access the ACLs give `principal` (the owner's Admin not included); undefined when none. */
export function sharedAccess(principal: Principal, acls: AccessControl | undefined): AccessType | undefined {
  if (acls === undefined) return undefined;
  const candidates: (AccessType | undefined)[] = [
    acls.public?.type,
    acls.collaborators?.[principal.sub],
    acls.collaborators?.['*'],
    acls.groups?.['*'],
    ...principal.groups.map((group) => acls.groups?.[group]),
  ];
  let best: AccessType | undefined;
  for (const type of candidates) if (rank(type) > rank(best)) best = type;
  return best;
}

/**
 * Whether `principal` may use a resource owned as `ownership` at access type `need`. `system.admin`: always. Without
 * `system.user` (e.g. `system.view` alone): Read at most. A resource without an ownership record (made while
 * authentication was off) belongs to admins only.
 */
export function permits(principal: Principal, ownership: Ownership | undefined, need: AccessType): boolean {
  if (isAdmin(principal)) return true;
  if (need !== 'Read' && !principal.roles.includes(ROLE_USER)) return false;
  if (ownership === undefined) return false;
  if (ownership.owner === principal.sub) return true;
  return rank(sharedAccess(principal, ownership.acls)) >= rank(need);
}

/** Whether `principal` may change who owns a resource (only `system.admin`, as in OpenStorage). */
export function mayChangeOwner(principal: Principal): boolean {
  return principal.roles.includes(ROLE_ADMIN);
}

const accessTypeSchema = z.enum(ACCESS_TYPES, { error: 'must be Read, Write or Admin' });
const nameKey = z.string().min(1).max(256);

/** The JSON form of AccessControl in requests. */
export const accessControlSchema = z.strictObject(
  {
    groups: z.record(nameKey, accessTypeSchema).optional(),
    collaborators: z.record(nameKey, accessTypeSchema).optional(),
    public: z.strictObject({ type: accessTypeSchema }, { error: 'must be an object' }).optional(),
  },
  { error: 'must be an object' },
);

/** Body of `PUT /v1/ownership/{kind}/{id}`: the new owner (admins only) and/or the new ACLs (replacing the old). */
export const ownershipUpdateSchema = z.strictObject(
  {
    ownership: z.strictObject(
      { owner: nameKey.optional(), acls: accessControlSchema.optional() },
      { error: 'must be an object' },
    ),
  },
  { error: 'must be a JSON object' },
);
