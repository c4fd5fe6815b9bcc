/**
 * Forwarding to the node where an operation runs. The engine throws `RunsElsewhere` (a FAILED_PRECONDITION naming a
 * node) when a request must run on another node: the volume is attached there, or only that node holds what it needs.
 * `forwardElsewhere` sends such a request once to that node's API (its `api_url` in the cluster directory) with the
 * original method, path, query, body and Authorization, and answers with that node's status and body. The forwarded
 * request carries `x-ferry-forwarded-by: <this node's id>`: a request that already carries it is never forwarded
 * again (it answers the FAILED_PRECONDITION), so two nodes that disagree cannot bounce a request between them.
 */
import type { Context, MiddlewareHandler } from 'hono';
import { FerryError } from '../common/index.js';
import { RunsElsewhere, type VolumeInfo } from '../node/index.js';
import type { ClusterDirectory } from './cluster-directory.js';
import { logContext } from './log.js';
import { REQUEST_ID_HEADER } from './request-log.js';

/** Set on a forwarded request: the id of the node that forwarded it. */
export const FORWARDED_BY_HEADER = 'x-ferry-forwarded-by';
/** Set on the answer to a forwarded request: the id of the node that answered it. */
export const FORWARDED_TO_HEADER = 'x-ferry-forwarded-to';
/** Time the other node has to answer by default: 60 s. */
export const DEFAULT_FORWARD_TIMEOUT_MS = 60_000;

/** Request headers passed on (Authorization above all: authentication is cluster-wide, the other node checks it). */
const REQUEST_HEADERS = ['authorization', 'content-type', 'accept', 'idempotency-key'];
/** Response headers passed back. */
const RESPONSE_HEADERS = ['content-type', 'retry-after', 'www-authenticate'];

/** Options of forwardElsewhere. */
export interface ForwardingOptions {
  /** The cluster's nodes (their API URLs) and this node's id. */
  directory: ClusterDirectory;
  /** Time the other node has to answer, ms. Default DEFAULT_FORWARD_TIMEOUT_MS. */
  timeoutMs?: number;
  /** The fetch used to reach the other node. Default the global fetch. */
  fetch?: typeof fetch;
}

/** UNAVAILABLE naming the node a request must run on, and why it cannot go there now. */
function unreachable(err: RunsElsewhere, why: string, cause?: unknown): FerryError {
  return new FerryError(
    'UNAVAILABLE',
    `this request runs on node ${err.nodeId}, which ${why}; retry when it is back (${err.message})`,
    cause === undefined ? undefined : { cause },
  );
}

/** The request's body as received (the handler's read is cached), or undefined when it has none or it cannot be had. */
async function bodyOf(c: Context): Promise<ArrayBuffer | undefined> {
  if (c.req.method === 'GET' || c.req.method === 'HEAD') return undefined;
  try {
    const body = await c.req.arrayBuffer();
    return body.byteLength > 0 ? body : undefined;
  } catch {
    // Over the API's body limit (a route that takes no body never read it): nothing to forward.
    return undefined;
  }
}

/** Sends the request on to `apiUrl` and returns that node's answer. */
async function sendOn(c: Context, err: RunsElsewhere, apiUrl: string, nodeId: string, options: ForwardingOptions) {
  const headers = new Headers();
  for (const name of REQUEST_HEADERS) {
    const value = c.req.header(name);
    if (value !== undefined) headers.set(name, value);
  }
  headers.set(FORWARDED_BY_HEADER, nodeId);
  // The same request id on both nodes' log lines.
  const requestId = logContext.getStore()?.req_id;
  if (requestId !== undefined) headers.set(REQUEST_ID_HEADER, requestId);
  const body = await bodyOf(c);
  const url = new URL(c.req.url);
  const signal = AbortSignal.any([
    c.req.raw.signal,
    AbortSignal.timeout(options.timeoutMs ?? DEFAULT_FORWARD_TIMEOUT_MS),
  ]);
  let res: Response;
  try {
    res = await (options.fetch ?? fetch)(`${apiUrl.replace(/\/+$/, '')}${url.pathname}${url.search}`, {
      method: c.req.method,
      headers,
      ...(body !== undefined && { body }),
      redirect: 'manual',
      signal,
    });
  } catch (cause: unknown) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw unreachable(err, `did not answer at ${apiUrl} (${reason})`, cause);
  }
  const out = new Headers();
  for (const name of RESPONSE_HEADERS) {
    const value = res.headers.get(name);
    if (value !== null) out.set(name, value);
  }
  out.set(FORWARDED_TO_HEADER, err.nodeId);
  return new Response(res.body, { status: res.status, headers: out });
}

/**
 * Middleware (mount on `/v1/*`, after authentication and the body limit): when the handler failed with
 * `RunsElsewhere`, forwards the request once to the node it names and answers with that node's answer. A request
 * already forwarded, or one naming this node, keeps its FAILED_PRECONDITION. A node without a record in the cluster
 * (offline) or that does not answer gives UNAVAILABLE naming it.
 */
export function forwardElsewhere(options: ForwardingOptions): MiddlewareHandler {
  const { directory } = options;
  return async (c, next) => {
    await next();
    const err = c.error;
    if (!(err instanceof RunsElsewhere)) return;
    if (c.req.header(FORWARDED_BY_HEADER) !== undefined || err.nodeId === directory.nodeId) return;
    const target = (await directory.nodes()).find((node) => node.id === err.nodeId);
    if (target === undefined) throw unreachable(err, 'is offline (it has no record in the cluster)');
    c.res = await sendOn(c, err, target.api_url, directory.nodeId, options);
    c.error = undefined;
  };
}

/**
 * The node an operation on `volume` runs on when this node does not hold it: where it is attached, else its first
 * in-sync replica (else its first replica).
 */
export function nodeFor(volume: VolumeInfo): string | undefined {
  if (volume.attached_node !== undefined) return volume.attached_node;
  const replicas = volume.replicas ?? [];
  return (replicas.find((r) => r.state === 'in-sync') ?? replicas[0])?.node_id;
}

/**
 * Throws `RunsElsewhere` when this node holds no replica of `volume` (so `forwardElsewhere` sends the request to a
 * node that does): for operations that start work here that needs the volume's data, such as a backup job.
 */
export function requireHeldHere(volume: VolumeInfo, what: string): void {
  if (volume.held_here !== false) return;
  const node = nodeFor(volume);
  if (node === undefined) return;
  throw new RunsElsewhere(
    node,
    `${what} runs on a node holding volume ${volume.name}: node ${node} does, this node does not`,
  );
}
