/**
 * The bearer-token middleware for createApp's `authenticate` seam: public paths pass; every other `/v1` request must
 * carry `Authorization: Bearer <token>` that verifies, and a role that allows the route's action. The principal is
 * left on the context for the routes' ownership checks.
 */
import type { MiddlewareHandler } from 'hono';
import { FerryError } from '../../common/index.js';
import './context.js';
import { requireRole, routeAction } from './policy.js';
import type { TokenVerifier } from './verifier.js';

/** The token of an `Authorization: Bearer ...` header; undefined when there is none. */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined || header.trim() === '') return undefined;
  const match = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  if (match === null) {
    throw new FerryError('UNAUTHENTICATED', 'the Authorization header must be "Bearer <token>"');
  }
  return match[1];
}

/** Authentication and role checks with `verifier`; 401 carries `WWW-Authenticate: Bearer`. */
export function bearerAuth(verifier: TokenVerifier): MiddlewareHandler {
  return async (c, next) => {
    const action = routeAction(c.req.method, c.req.path);
    if (action === 'public') {
      await next();
      return;
    }
    try {
      const principal = await verifier.verify(bearerToken(c.req.header('authorization')));
      c.set('principal', principal);
      requireRole(principal, action);
    } catch (err: unknown) {
      if (err instanceof FerryError && err.code === 'UNAUTHENTICATED') {
        c.header('WWW-Authenticate', 'Bearer realm="ferry"');
      }
      throw err;
    }
    await next();
  };
}
