/**
 * Who a request is from: the claims of its bearer token in the OpenStorage auth model (`sub`, `name`, `email`,
 * `roles`, `groups`) and what the roles let it do.
 */
import { z } from 'zod';
import { FerryError } from '../../common/index.js';

/** Every resource, every operation. */
export const ROLE_ADMIN = 'system.admin';
/** Creates resources and works on its own and on those shared with it. */
export const ROLE_USER = 'system.user';
/** Reads what is its own or shared with it; never changes anything. */
export const ROLE_VIEW = 'system.view';

/** The roles Ferry knows; other role names in a token are kept but grant nothing. */
export const ROLES = [ROLE_ADMIN, ROLE_USER, ROLE_VIEW] as const;
export type Role = (typeof ROLES)[number];

/** The caller of a request, from a verified token. */
export interface Principal {
  /** The unique user name (the token's `sub`): resources record it as their owner, ACLs name it as a collaborator. */
  sub: string;
  /** Display name (`name` claim). */
  name?: string;
  /** `email` claim. */
  email?: string;
  /** `roles` claim, as given (unknown roles grant nothing). */
  roles: string[];
  /** `groups` claim: ACLs may share a resource with a group. */
  groups: string[];
}

const stringList = z.array(z.string().min(1).max(256)).max(256);

/** The claims Ferry reads; other claims are ignored. */
const claimsSchema = z.object({
  sub: z.string().min(1).max(256),
  name: z.string().max(256).optional(),
  email: z.string().max(256).optional(),
  roles: stringList.optional(),
  groups: stringList.optional(),
});

/** Builds the principal from a verified token's payload; UNAUTHENTICATED naming the claim when one is malformed. */
export function principalFromClaims(payload: unknown): Principal {
  const parsed = claimsSchema.safeParse(payload);
  if (!parsed.success) {
    const claim = String(parsed.error.issues[0]?.path[0] ?? 'claims');
    throw new FerryError('UNAUTHENTICATED', `invalid token: the "${claim}" claim is missing or malformed`);
  }
  const { sub, name, email, roles, groups } = parsed.data;
  return {
    sub,
    ...(name !== undefined && { name }),
    ...(email !== undefined && { email }),
    roles: roles ?? [],
    groups: groups ?? [],
  };
}

/** Whether the principal holds `system.admin`. */
export function isAdmin(principal: Principal): boolean {
  return principal.roles.includes(ROLE_ADMIN);
}

/** Whether the principal may change things (create, update, delete): `system.admin` or `system.user`. */
export function canChange(principal: Principal): boolean {
  return isAdmin(principal) || principal.roles.includes(ROLE_USER);
}

/** Whether the principal may read anything at all: any of Ferry's roles. */
export function canRead(principal: Principal): boolean {
  return ROLES.some((role) => principal.roles.includes(role));
}
