/** The NBD export of a storage node: serves an ExportProvider's volumes and snapshots to NBD clients. */

export {
  defaultTlsMode,
  isLoopback,
  NBD_TLS_MODES,
  type NbdAuthorize,
  type NbdIdentity,
  type NbdTlsMode,
  type NbdTlsOptions,
} from './access.js';
export type { IoObserver, IoObserverFactory } from './connection.js';
/** The protocol's magic numbers, flags, options and replies, for protocol-level clients (test/support/nbd-raw-client.ts). */
export * as NbdProtocol from './constants.js';
export { NbdServer, type NbdServerOptions } from './server.js';
export { SocketReader, StreamClosedError } from './socket-reader.js';
/** The server side of a TLS-PSK handshake over an open socket (NBD's STARTTLS; the link of paired clusters too). */
export { startTls as acceptTlsPsk } from './tls.js';
