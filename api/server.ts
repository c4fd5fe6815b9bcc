/**
 * Serves an API app over HTTP with @hono/node-server, and on the same port the link of paired clusters (HTTP over
 * TLS-PSK, api/pairs/channel.ts) when `peer` is given: the first byte of a connection tells which it is.
 */
import type { Server as HttpServer, IncomingMessage, ServerResponse } from 'node:http';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { createAdaptorServer } from '@hono/node-server';
import type { Hono } from 'hono';
import { FerryError } from '../common/index.js';
import { acceptPeer, startsTls } from './pairs/channel.js';
import { rememberPeer } from './pairs/peer-identity.js';

/** A running API server. */
export interface RunningApiServer {
  /** Base URL, e.g. `http://127.0.0.1:9001` (the port actually bound when 0 was asked for). */
  url: string;
  /** Stops accepting connections, ends idle ones and resolves when the server is closed. */
  close(): Promise<void>;
}

/** The paired clusters' side of the port. */
export interface PeerListener {
  /** The app that answers paired clusters (its routes read the peer's identity with `peerOf`). */
  app: Hono;
  /** The pre-shared key of a TLS-PSK identity, or undefined for an unknown one. */
  keyOf(identity: string): Buffer | undefined;
}

/** How long the server keeps an idle peer connection open. */
const PEER_KEEPALIVE_MS = 65_000;

/** How long a new connection may stay silent before it says whether it is HTTP or TLS. */
const FIRST_BYTE_TIMEOUT_MS = 60_000;

function formatUrl(address: AddressInfo): string {
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `http://${host}:${address.port}`;
}

/**
 * Listens on `host:port` and serves `app` (and `peer` when given). Rejects with UNAVAILABLE (and binds nothing) when
 * the address is taken or cannot be bound, so two nodes never answer on one port.
 */
export function startApiServer(app: Hono, host: string, port: number, peer?: PeerListener): Promise<RunningApiServer> {
  const http = createAdaptorServer({ fetch: app.fetch }) as HttpServer;
  const peerHttp = peer !== undefined ? (createAdaptorServer({ fetch: peer.app.fetch }) as HttpServer) : undefined;
  // Requests in flight by socket: a socket with none is idle, and ends when the server closes.
  const active = new Map<Socket, number>();
  let closing = false;
  const track = (server: HttpServer): void => {
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      const socket = req.socket;
      active.set(socket, (active.get(socket) ?? 0) + 1);
      res.once('close', () => {
        const left = (active.get(socket) ?? 1) - 1;
        if (!active.has(socket)) return;
        active.set(socket, left);
        if (left === 0 && closing) socket.destroy();
      });
    });
  };
  track(http);
  if (peerHttp !== undefined) {
    track(peerHttp);
    // Longer than the peers keep an idle connection (PEER_IDLE_MS): the client, not the server, ends idle links, so
    // a call never goes out on a connection the server has just dropped.
    peerHttp.keepAliveTimeout = PEER_KEEPALIVE_MS;
  }
  const hand = (server: HttpServer, socket: Socket): void => {
    active.set(socket, 0);
    socket.once('close', () => active.delete(socket));
    server.emit('connection', socket);
  };
  const server = createServer((socket) => {
    if (peer === undefined || peerHttp === undefined) {
      hand(http, socket);
      return;
    }
    active.set(socket, 0);
    socket.once('close', () => active.delete(socket));
    socket.setTimeout(FIRST_BYTE_TIMEOUT_MS, () => socket.destroy());
    socket.once('readable', () => {
      socket.setTimeout(0);
      const first = socket.read(1) as Buffer | null;
      if (first === null) return;
      socket.unshift(first);
      active.delete(socket);
      if (!startsTls(first[0] as number)) {
        hand(http, socket);
        return;
      }
      acceptPeer(socket, (identity) => peer.keyOf(identity)).then(
        ({ socket: secure, identity }) => {
          rememberPeer(secure, identity);
          hand(peerHttp, secure as unknown as Socket);
        },
        () => socket.destroy(),
      );
    });
  });
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      const reason = err.code === 'EADDRINUSE' ? 'the address is already in use' : err.message;
      reject(new FerryError('UNAVAILABLE', `cannot listen on ${host}:${port}: ${reason}`, { cause: err }));
    };
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      const address = server.address();
      if (address === null || typeof address === 'string') {
        reject(new FerryError('INTERNAL', 'the API server has no TCP address'));
        return;
      }
      resolve({
        url: formatUrl(address),
        close: () =>
          new Promise<void>((done, fail) => {
            closing = true;
            server.close((err?: Error) => (err ? fail(err) : done()));
            for (const [socket, n] of active) if (n === 0) socket.destroy();
          }),
      });
    });
  });
}
