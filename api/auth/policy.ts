/**
 * What each route asks of the caller's roles, decided before the route runs: `public` (no token), `read` (any of
 * Ferry's roles), `write` (`system.user` or `system.admin`), `admin` (`system.admin`). GET is read; POST routes
 * that only read (enumerate, filters, status, catalog, verify) are read; everything else changes something. Which
 * resources a caller may touch is checked by the routes themselves (ownership).
 */
import { FerryError } from '../../common/index.js';
import { canChange, canRead, isAdmin, type Principal } from './principal.js';

export type RouteAction = 'public' | 'read' | 'write' | 'admin';

/** Paths under /v1 that answer without a token. */
export const PUBLIC_PATHS: ReadonlySet<string> = new Set(['/v1/identities/version', '/v1/openapi.json', '/v1/docs']);

/** POST routes that change nothing. */
const READING_POSTS: readonly RegExp[] = [
  // Hands callers their own NBD key: any role may read its exports over NBD.
  /^\/v1\/auth\/nbd-key$/,
  /^\/v1\/volumes\/(filters|inspectwithfilters)$/,
  /^\/v1\/volumes\/snapshots\/[^/]+\/filters$/,
  /^\/v1\/cloudbackups\/(enumerate\/filters|status|catalog|verify)$/,
  /^\/v1\/(schedulepolicies|cloudbackups\/schedules)\/(enumerate|inspect)(\/[^/]+)?$/,
];

/** Route prefixes only `system.admin` may use. */
const ADMIN_PREFIXES: readonly string[] = ['/v1/keys', '/v1/clusterpairs', '/v1/volumemigrate'];

/** The action of `method path` (path as the router sees it). */
export function routeAction(method: string, path: string): RouteAction {
  if (PUBLIC_PATHS.has(path)) return 'public';
  if (ADMIN_PREFIXES.some((prefix) => path === prefix || path.startsWith(`${prefix}/`))) return 'admin';
  const verb = method.toUpperCase();
  if (verb === 'GET' || verb === 'HEAD' || verb === 'OPTIONS') return 'read';
  if (verb === 'POST' && READING_POSTS.some((pattern) => pattern.test(path))) return 'read';
  return 'write';
}

/** PERMISSION_DENIED unless `principal`'s roles allow `action`. */
export function requireRole(principal: Principal, action: RouteAction): void {
  if (action === 'public') return;
  if (action === 'admin' && !isAdmin(principal)) {
    throw new FerryError('PERMISSION_DENIED', `${principal.sub} is not a system.admin; only admins may do this`);
  }
  if (action === 'write' && !canChange(principal)) {
    throw new FerryError('PERMISSION_DENIED', `${principal.sub} may only read (needs system.user or system.admin)`);
  }
  if (!canRead(principal)) {
    throw new FerryError(
      'PERMISSION_DENIED',
      `${principal.sub} has none of the roles system.admin, system.user, system.view`,
    );
  }
}
