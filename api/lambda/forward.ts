/**
 * Forwards a request to a node's API unchanged (method, path, query, body, the headers that matter) and returns the
 * node's answer as it is. Used by the serverless handler for everything it cannot do without a block engine.
 */
import type { Context } from 'hono';
import { FerryError } from '../../common/index.js';

/** Request headers passed on to the node. */
const REQUEST_HEADERS = ['authorization', 'content-type', 'accept', 'x-request-id', 'idempotency-key'];
/** Response headers passed back. */
const RESPONSE_HEADERS = ['content-type', 'retry-after', 'x-request-id', 'www-authenticate'];

/** Options of forwardTo. */
export interface ForwardOptions {
  fetch: typeof fetch;
  /** Time the node has to answer, in ms. */
  timeoutMs: number;
}

/**
 * A handler that forwards to `nodeApiUrl` (no trailing '/'); without a URL it answers UNAVAILABLE naming the
 * variable to set.
 */
export function forwardTo(nodeApiUrl: string | undefined, options: ForwardOptions): (c: Context) => Promise<Response> {
  return async (c) => {
    const url = new URL(c.req.url);
    if (nodeApiUrl === undefined) {
      throw new FerryError(
        'UNAVAILABLE',
        `the serverless handler serves catalog reads only; set FERRY_NODE_API_URL to forward ${c.req.method} ${url.pathname} to a node`,
      );
    }
    const headers = new Headers();
    for (const name of REQUEST_HEADERS) {
      const value = c.req.header(name);
      if (value !== undefined) headers.set(name, value);
    }
    const method = c.req.method;
    const body = method === 'GET' || method === 'HEAD' ? undefined : await c.req.arrayBuffer();
    let res: Response;
    try {
      res = await options.fetch(`${nodeApiUrl}${url.pathname}${url.search}`, {
        method,
        headers,
        ...(body !== undefined && body.byteLength > 0 && { body }),
        redirect: 'manual',
        signal: AbortSignal.timeout(options.timeoutMs),
      });
    } catch (err: unknown) {
      const reason = err instanceof Error ? err.message : String(err);
      throw new FerryError('UNAVAILABLE', `the node API at ${nodeApiUrl} did not answer (${reason}); retry later`, {
        cause: err,
      });
    }
    const out = new Headers();
    for (const name of RESPONSE_HEADERS) {
      const value = res.headers.get(name);
      if (value !== null) out.set(name, value);
    }
    return new Response(await res.arrayBuffer(), { status: res.status, headers: out });
  };
}
