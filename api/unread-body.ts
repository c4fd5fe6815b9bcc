/**
 * Refusals that come before a request's body is read (401 and 403 from authentication, 413 from the size limit)
 * close the connection after the answer: otherwise the HTTP server would keep it alive and first read the unread
 * body off the wire (up to its whole Content-Length), which lets unauthenticated callers make the node read as much
 * as they send. Closing costs an honest client one reconnect after a refusal.
 */
import type { MiddlewareHandler } from 'hono';

/** The statuses answered before the body is read. */
const REFUSED_UNREAD: ReadonlySet<number> = new Set([401, 403, 413]);

/** Whether the request says it has a body (a non-zero Content-Length, or a Transfer-Encoding). */
function hasBody(headers: Headers): boolean {
  const length = headers.get('content-length');
  if (length !== null && length.trim() !== '0') return true;
  return headers.get('transfer-encoding') !== null;
}

/** Adds `Connection: close` to a 401, 403 or 413 answer to a request that carries a body. */
export function closeOnUnreadBody(): MiddlewareHandler {
  return async (c, next) => {
    await next();
    if (REFUSED_UNREAD.has(c.res.status) && hasBody(c.req.raw.headers)) c.res.headers.set('connection', 'close');
  };
}
