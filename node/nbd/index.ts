/** The NBD export of a storage node: serves an ExportProvider's volumes and snapshots to NBD clients. */
export type { IoObserver, IoObserverFactory } from './connection.js';
export { NbdServer, type NbdServerOptions } from './server.js';
