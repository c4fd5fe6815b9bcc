/**
 * Request ids and the access log: every response carries `x-request-id` (the caller's, when it sent a sane one, else
 * a new UUID), every log line written while the request is handled carries it as `req_id`, and one line per request
 * says method, path, status and duration. Headers, query strings and bodies are never logged.
 */
import { randomUUID } from 'node:crypto';
import type { Context, MiddlewareHandler } from 'hono';
import { routePath } from 'hono/route';
import { type Logger, logContext } from './log.js';

/** The request-id header, read from requests and set on every response. */
export const REQUEST_ID_HEADER = 'x-request-id';

/** Ids a caller may choose: up to 128 letters, digits, `.`, `_`, `-` (anything else gets a fresh id). */
const CALLER_ID = /^[A-Za-z0-9._-]{1,128}$/;

/** Paths probed often by machines (Prometheus, load balancers): logged at debug, not info. */
const PROBES = new Set(['/metrics', '/healthz', '/readyz']);

/** One handled request, for metrics. */
export interface FinishedRequest {
  method: string;
  /** The route pattern that answered (`/v1/volumes/inspect/:volume_id`), or `unmatched`. */
  route: string;
  status: number;
  seconds: number;
}

export interface RequestLogOptions {
  /** Where the access log goes. Default: nowhere (request ids are still set). */
  logger?: Logger;
  /** Called after each request (the node's metrics count requests by route here). Must not throw. */
  onFinished?: (request: FinishedRequest) => void;
}

/** The route pattern of the handler that answered; `unmatched` when only middleware ran (404). */
export function routeOf(c: Context): string {
  const path = routePath(c, -1);
  return path === '' || path.endsWith('*') ? 'unmatched' : path;
}

/** Middleware: request id, request-scoped log context, access log line, `onFinished`. Mount it first. */
export function requestLog(options: RequestLogOptions = {}): MiddlewareHandler {
  const { logger, onFinished } = options;
  return async (c, next) => {
    const given = c.req.header(REQUEST_ID_HEADER);
    const id = given !== undefined && CALLER_ID.test(given) ? given : randomUUID();
    const started = process.hrtime.bigint();
    await logContext.run({ req_id: id }, () => next());
    c.header(REQUEST_ID_HEADER, id);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const status = c.res.status;
    if (logger !== undefined) {
      const fields = { req_id: id, method: c.req.method, path: c.req.path, status, ms: Math.round(seconds * 1e4) / 10 };
      if (PROBES.has(c.req.path)) logger.debug(fields, 'request');
      else logger.info(fields, 'request');
    }
    if (onFinished !== undefined) {
      try {
        onFinished({ method: c.req.method, route: routeOf(c), status, seconds });
      } catch {
        // Metrics never fail a request.
      }
    }
  };
}
