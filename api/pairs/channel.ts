/**
 * The link between two paired clusters: HTTP over TLS 1.3 with pre-shared keys (PSK with (EC)DHE: forward secrecy,
 * no certificates; TLS 1.2's ECDHE-PSK suites are accepted too), on the same port as the API. Each side proves it holds the key: a pair's requests use identity
 * `p.<pair id>` with the pair's key; the one request that creates a pair uses `t.<token id>` with the token's secret.
 * The API port tells the two apart by the first byte a client sends (a TLS handshake starts with 0x16, an HTTP
 * request with a letter), so a cluster is paired by its API URL alone.
 */

import { constants } from 'node:crypto';
import type { ClientRequest } from 'node:http';
import { Agent, request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import { createSecureContext, type SecureContext, type TLSSocket } from 'node:tls';
import { ERROR_CODES, type ErrorCode, FerryError, networkErrorCode } from '../../common/index.js';
import { acceptTlsPsk } from '../../node/index.js';

/** ECDHE-PSK first (forward secrecy), then DHE-PSK with AES-GCM. */
export const PEER_CIPHERS = 'ECDHE-PSK-CHACHA20-POLY1305:DHE-PSK-AES256-GCM-SHA384:DHE-PSK-AES128-GCM-SHA256';
/** TLS 1.3 (PSK with (EC)DHE: forward secrecy), AES-GCM first: the CPU's AES instructions make it the cheapest. */
export const PEER_SUITES = 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256';

/** The TLS record type of a handshake: the first byte of every TLS connection. */
const TLS_HANDSHAKE = 0x16;

/** How long a client keeps an idle connection to a peer for its next call. */
const PEER_IDLE_MS = 30_000;

/** How long a peer may take over the TLS handshake. */
const HANDSHAKE_TIMEOUT_MS = 15_000;

/**
 * How long a call may go without a byte either way before it fails (a cut link stalls rather than errs):
 * FERRY_PEER_TIMEOUT_SECONDS, default 30.
 */
export function peerTimeoutMs(env: NodeJS.ProcessEnv = process.env): number {
  const seconds = Number(env.FERRY_PEER_TIMEOUT_SECONDS ?? '');
  return Number.isFinite(seconds) && seconds > 0 ? seconds * 1000 : 30_000;
}

let serverContext: SecureContext | undefined;

/** Whether the first byte of a connection starts a TLS handshake. */
export function startsTls(first: number): boolean {
  return first === TLS_HANDSHAKE;
}

/**
 * The server side of a peer's TLS-PSK handshake over `socket` (no unread bytes lost: the caller put back what it
 * peeked). Resolves with the TLS socket and the identity the peer proved; rejects on a wrong key, an unknown identity
 * or a timeout (the caller destroys the socket).
 */
export function acceptPeer(
  socket: Socket,
  keyOf: (identity: string) => Buffer | undefined,
): Promise<{ socket: TLSSocket; identity: string }> {
  // No session tickets: a resumed session skips the PSK callback, so it would prove no identity (the client caches
  // none either, PeerClient's agent).
  serverContext ??= createSecureContext({
    ciphers: `${PEER_SUITES}:${PEER_CIPHERS}`,
    minVersion: 'TLSv1.2',
    maxVersion: 'TLSv1.3',
    secureOptions: constants.SSL_OP_NO_TICKET,
  });
  return acceptTlsPsk(socket, keyOf, serverContext, HANDSHAKE_TIMEOUT_MS);
}

/** A request body: JSON, bytes, or a stream of byte chunks. */
export type PeerBody = { json: unknown } | { bytes: AsyncIterable<Buffer> };

/** One side's end of the link to the other cluster. */
export class PeerClient {
  private readonly agent: Agent;
  private readonly base: URL;

  /** `url`: the other cluster's API URL (http or https; the scheme is ignored: the link is always TLS-PSK). */
  constructor(
    url: string,
    private readonly identity: string,
    key: Buffer,
    /** Names the other side in error messages, e.g. `cluster pair dc2`. */
    private readonly what: string,
  ) {
    this.base = new URL(url);
    const psk = Buffer.from(key);
    // The https Agent passes pskCallback to tls.connect; its type leaves it out.
    const options: ConstructorParameters<typeof Agent>[0] & {
      pskCallback: () => { psk: Buffer; identity: string };
    } = {
      keepAlive: true,
      maxSockets: 8,
      // Every connection is a full PSK handshake: a resumed one would prove no identity (acceptPeer refuses it).
      maxCachedSessions: 0,
      // An idle connection is ended after this (the server keeps them longer, api/server.ts).
      timeout: PEER_IDLE_MS,
      ciphers: `${PEER_SUITES}:${PEER_CIPHERS}`,
      minVersion: 'TLSv1.2',
      maxVersion: 'TLSv1.3',
      checkServerIdentity: () => undefined,
      pskCallback: () => ({ psk, identity: this.identity }),
    };
    this.agent = new Agent(options);
  }

  /**
   * Sends one request and resolves with its JSON answer. A FerryError from the other side keeps its code (and says
   * which side answered); a link that cannot be made is UNAVAILABLE naming the pair.
   */
  async call<T>(method: string, path: string, body?: PeerBody, signal?: AbortSignal): Promise<T> {
    const text = await this.send(method, path, body, signal);
    return (text === '' ? {} : JSON.parse(text)) as T;
  }

  /** Ends the link's idle connections. */
  close(): void {
    this.agent.destroy();
  }

  private send(
    method: string,
    path: string,
    body: PeerBody | undefined,
    signal?: AbortSignal,
    again = true,
  ): Promise<string> {
    const json = body !== undefined && 'json' in body ? Buffer.from(JSON.stringify(body.json)) : undefined;
    return new Promise<string>((resolve, reject) => {
      const req = httpsRequest(
        {
          host: this.base.hostname.replace(/^\[(.*)\]$/, '$1'),
          port: this.base.port === '' ? 9001 : Number(this.base.port),
          method,
          path,
          agent: this.agent,
          headers: {
            ...(json !== undefined && { 'content-type': 'application/json', 'content-length': json.length }),
            ...(body !== undefined && 'bytes' in body && { 'content-type': 'application/octet-stream' }),
          },
          ...(signal !== undefined && { signal }),
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (d: Buffer) => chunks.push(d));
          res.on('error', (err) => reject(this.unreachable(err)));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            const status = res.statusCode ?? 500;
            if (status >= 200 && status < 300) resolve(text);
            else reject(this.remoteError(status, text));
          });
        },
      );
      req.on('error', (err) => {
        // A kept connection the other side closed as this call went out: once more on a new one (the call was not
        // read there). A streamed body cannot be sent twice: its caller sends the call again.
        const code = (err as NodeJS.ErrnoException).code;
        const stale = req.reusedSocket && (code === 'ECONNRESET' || code === 'EPIPE');
        if (stale && again && (body === undefined || 'json' in body)) {
          resolve(this.send(method, path, body, signal, false));
          return;
        }
        reject(this.unreachable(err));
      });
      const idle = peerTimeoutMs();
      req.setTimeout(idle, () => req.destroy(new Error(`no answer for ${idle / 1000} s (the link is cut or stalled)`)));
      if (body === undefined) req.end();
      else if (json !== undefined) req.end(json);
      else if ('bytes' in body) {
        pump(req, body.bytes).then(
          () => req.end(),
          (err: unknown) => req.destroy(err instanceof Error ? err : new Error(String(err))),
        );
      }
    });
  }

  private unreachable(err: Error): FerryError {
    if (err instanceof FerryError) return err;
    if (err.name === 'AbortError') return new FerryError('FAILED_PRECONDITION', `${this.what}: the call was cancelled`);
    const code = networkErrorCode(err);
    const why = /psk|handshake|alert|decrypt/i.test(err.message)
      ? "the other cluster refused this cluster's key (the pair was deleted there, or the token is wrong or used)"
      : (code ?? err.message);
    return new FerryError('UNAVAILABLE', `${this.what} cannot be reached at ${this.base.origin}: ${why}`, {
      cause: err,
    });
  }

  private remoteError(status: number, text: string): FerryError {
    let code: ErrorCode = status >= 500 ? 'INTERNAL' : 'FAILED_PRECONDITION';
    let message = text;
    try {
      const parsed = JSON.parse(text) as { code?: unknown; message?: unknown };
      if (typeof parsed.code === 'string' && (ERROR_CODES as readonly string[]).includes(parsed.code)) {
        code = parsed.code as ErrorCode;
      }
      if (typeof parsed.message === 'string') message = parsed.message;
    } catch {
      // Not JSON: the text as it came.
    }
    return new FerryError(code, `${this.what}: the other cluster answered: ${message}`);
  }
}

/** Writes `chunks` to `req`, waiting for drain; stops (without error) once the request is gone. */
async function pump(req: ClientRequest, chunks: AsyncIterable<Buffer>): Promise<void> {
  for await (const chunk of chunks) {
    if (req.destroyed) return;
    if (!req.write(chunk)) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          req.off('drain', done);
          req.off('close', done);
          resolve();
        };
        req.once('drain', done);
        req.once('close', done);
      });
    }
  }
}
