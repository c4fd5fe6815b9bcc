/**
 * NBD_OPT_STARTTLS: the server side of upgrading a connection's socket to TLS with pre-shared keys (TLS-PSK, as
 * GnuTLS and so libnbd and qemu use them: `username:hexkey` on the client). TLS 1.3 or 1.2 with (EC)DHE-PSK or PSK
 * suites; no certificates.
 */
import type { Socket } from 'node:net';
import { createSecureContext, type SecureContext, TLSSocket, type TLSSocketOptions } from 'node:tls';

/** TLS 1.3 suites first, then TLS 1.2 PSK suites with forward secrecy, then plain PSK ones. */
const PSK_CIPHERS = [
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'TLS_AES_128_GCM_SHA256',
  'ECDHE-PSK-CHACHA20-POLY1305',
  'ECDHE-PSK-AES256-CBC-SHA384',
  'ECDHE-PSK-AES128-CBC-SHA256',
  'DHE-PSK-AES256-GCM-SHA384',
  'DHE-PSK-AES128-GCM-SHA256',
  'PSK-AES256-GCM-SHA384',
  'PSK-AES128-GCM-SHA256',
].join(':');

let context: SecureContext | undefined;

function pskContext(): SecureContext {
  context ??= createSecureContext({ ciphers: PSK_CIPHERS, minVersion: 'TLSv1.2' });
  return context;
}

/** How long a client may take over the TLS handshake. */
const HANDSHAKE_TIMEOUT_MS = 30_000;

/**
 * Runs the server side of a TLS handshake over `socket` (which must carry no unread bytes and have no other
 * readers). Resolves with the TLS socket and the PSK identity the client authenticated as; rejects when the
 * handshake fails (a wrong key, an unknown identity, no common suite, a timeout), leaving the caller to destroy it.
 * `context`: the suites and versions (default NBD's); the TLS socket's close ends `socket` too.
 */
export function startTls(
  socket: Socket,
  pskKey: (identity: string) => Buffer | undefined,
  context: SecureContext = pskContext(),
  timeoutMs: number = HANDSHAKE_TIMEOUT_MS,
): Promise<{ socket: TLSSocket; identity: string }> {
  let identity: string | undefined;
  // Node's TLSSocket takes pskCallback (as tls.createServer does), but its type leaves it out.
  const options: TLSSocketOptions & { pskCallback: (socket: TLSSocket, id: string) => Buffer | null } = {
    isServer: true,
    secureContext: context,
    pskCallback: (_socket, id) => {
      const key = pskKey(id);
      if (key === undefined) return null;
      identity = id;
      return key;
    },
  };
  const secure = new TLSSocket(socket, options);
  // A TLS socket made over an open one does not end that one when it closes (an idle timeout, say): its peer would
  // keep a dead connection and get ECONNRESET on its next use.
  secure.once('close', () => socket.destroy());
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error('TLS handshake timed out')), timeoutMs);
    const fail = (err: Error): void => {
      clearTimeout(timer);
      secure.off('secure', onSecure);
      reject(err);
    };
    const onSecure = (): void => {
      clearTimeout(timer);
      secure.off('error', fail);
      secure.off('close', onClose);
      if (identity === undefined) reject(new Error('TLS handshake ended without a PSK identity'));
      else resolve({ socket: secure, identity });
    };
    const onClose = (): void => fail(new Error('the client closed the connection during the TLS handshake'));
    secure.once('secure', onSecure);
    secure.once('error', fail);
    secure.once('close', onClose);
  });
}
