/**
 * Who is on the other end of an NBD connection, and what the server's TLS policy makes of it. The node decides
 * nothing about ownership itself: whoever wires the server (the `ferry node start` daemon) injects `authorize`.
 */
import { isIP } from 'node:net';

/** `off`: plaintext only (STARTTLS refused); `optional`: TLS offered; `require`: nothing but STARTTLS before TLS. */
export const NBD_TLS_MODES = ['off', 'optional', 'require'] as const;
export type NbdTlsMode = (typeof NBD_TLS_MODES)[number];

/**
 * The identity a connection speaks for:
 * - `psk`: it negotiated TLS with the pre-shared key of user `name` (the TLS-PSK identity);
 * - `local`: plaintext from this host (loopback) on a server that does not require TLS: trusted, as a local user is;
 * - `open`: plaintext from another host on a server whose TLS mode is `off`: trusted, as the operator chose;
 * - `anonymous`: plaintext from another host while TLS is offered: may open nothing until it negotiates TLS.
 */
export type NbdIdentity = { kind: 'psk'; name: string } | { kind: 'local' } | { kind: 'open' } | { kind: 'anonymous' };

/**
 * Decides whether `identity` may open `exportName` (`write`: as a writer, else read-only). Resolves when it may;
 * rejects with the reason otherwise (a FerryError: PERMISSION_DENIED, or NOT_FOUND to hide what it may not see).
 * Called only for `psk` identities.
 */
export type NbdAuthorize = (
  identity: NbdIdentity & { kind: 'psk' },
  exportName: string,
  write: boolean,
) => Promise<void>;

/** TLS of an NBD server. */
export interface NbdTlsOptions {
  /** The policy; default `optional` (see {@link defaultTlsMode} for what a daemon picks). */
  mode?: NbdTlsMode;
  /**
   * The pre-shared key of a TLS-PSK identity, or undefined when there is none. Called synchronously during the TLS
   * handshake. Without it the server offers no TLS (STARTTLS is refused as unsupported), whatever the mode, and a
   * server in mode `require` cannot be built.
   */
  pskKey?: (identity: string) => Buffer | undefined;
}

/** Whether `address` (an IP literal or host name) is this host's loopback. */
export function isLoopback(address: string): boolean {
  const host = address.replace(/^\[|\]$/g, '').replace(/^::ffff:/i, '');
  if (host === 'localhost' || host === '::1') return true;
  return isIP(host) === 4 && host.startsWith('127.');
}

/** The secure default: TLS required when the server listens beyond loopback, offered on loopback. */
export function defaultTlsMode(listenHost: string): NbdTlsMode {
  return isLoopback(listenHost) ? 'optional' : 'require';
}

/** The identity of a plaintext connection from `remoteAddress` under `mode`. */
export function plaintextIdentity(mode: NbdTlsMode, remoteAddress: string | undefined): NbdIdentity {
  if (remoteAddress !== undefined && isLoopback(remoteAddress)) return { kind: 'local' };
  return mode === 'off' ? { kind: 'open' } : { kind: 'anonymous' };
}
