/** Which TLS-PSK identity each peer connection proved (set by the API server, read by the peer routes). */
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Context } from 'hono';

const identities = new WeakMap<object, string>();

/** Records the identity `socket` proved in its handshake. */
export function rememberPeer(socket: TLSSocket, identity: string): void {
  identities.set(socket, identity);
}

/** The identity the request's connection proved, or undefined (not a peer connection). */
export function peerOf(c: Context): string | undefined {
  const env = c.env as { incoming?: { socket?: Socket } } | undefined;
  const socket = env?.incoming?.socket;
  return socket === undefined ? undefined : identities.get(socket);
}
