/** Serves an API app over HTTP with @hono/node-server. */
import type { AddressInfo } from 'node:net';
import { createAdaptorServer } from '@hono/node-server';
import type { Hono } from 'hono';
import { FerryError } from '../common/index.js';

/** A running API server. */
export interface RunningApiServer {
  /** Base URL, e.g. `http://127.0.0.1:9001` (the port actually bound when 0 was asked for). */
  url: string;
  /** Stops accepting connections, ends idle ones and resolves when the server is closed. */
  close(): Promise<void>;
}

function formatUrl(address: AddressInfo): string {
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `http://${host}:${address.port}`;
}

/**
 * Listens on `host:port` and serves `app`. Rejects with UNAVAILABLE (and binds nothing) when the address is taken or
 * cannot be bound, so two nodes never answer on one port.
 */
export function startApiServer(app: Hono, host: string, port: number): Promise<RunningApiServer> {
  const server = createAdaptorServer({ fetch: app.fetch, hostname: host, port });
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
            server.close((err?: Error) => (err ? fail(err) : done()));
            if ('closeIdleConnections' in server) server.closeIdleConnections();
          }),
      });
    });
  });
}
