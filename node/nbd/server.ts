import { createServer, type Server, type Socket } from 'node:net';
import type { ExportProvider } from '../engine/types.js';
import type { NbdAuthorize, NbdTlsMode, NbdTlsOptions } from './access.js';
import { Connection, type IoObserverFactory } from './connection.js';

export interface NbdServerOptions {
  /** TLS (NBD_OPT_STARTTLS with TLS-PSK) and its policy; default: mode `optional`, but no keys, so no TLS. */
  tls?: NbdTlsOptions;
  /** What a TLS-PSK identity may list and open; default: everything. */
  authorize?: NbdAuthorize;
  /** log function for connection-level events; default: none */
  log?: (event: string, fields: Record<string, unknown>) => void;
  /** max request payload, default 32 MiB */
  maxPayload?: number;
  /**
   * Called once per connection when its export is open; what it returns is told of each READ and WRITE that
   * succeeded (for metrics). A rejection or a throw is logged and never fails the connection. Default: none.
   */
  observeIo?: IoObserverFactory;
}

const DEFAULT_MAX_PAYLOAD = 32 * 1024 * 1024;

/**
 * An NBD server (fixed newstyle, structured replies, base:allocation) serving the exports of a provider. Each
 * connection opens its export on NBD_OPT_GO / NBD_OPT_EXPORT_NAME and closes it when the client goes away.
 */
export class NbdServer {
  private readonly log: (event: string, fields: Record<string, unknown>) => void;
  private readonly maxPayload: number;
  private readonly observeIo: IoObserverFactory | undefined;
  private readonly connections = new Set<Connection>();
  private server: Server | undefined;
  private closing = false;
  private readonly tls: { mode: NbdTlsMode; pskKey: ((identity: string) => Buffer | undefined) | undefined };
  private readonly authorize: NbdAuthorize | undefined;

  constructor(
    private readonly provider: ExportProvider,
    options: NbdServerOptions = {},
  ) {
    const log = options.log;
    // A throwing log function must not take a connection (or the process) down.
    this.log = (event, fields) => {
      try {
        log?.(event, fields);
      } catch {
        // ignored on purpose
      }
    };
    this.tls = { mode: options.tls?.mode ?? 'optional', pskKey: options.tls?.pskKey };
    if (this.tls.mode === 'require' && this.tls.pskKey === undefined) {
      throw new RangeError('NBD TLS mode require needs TLS keys (tls.pskKey)');
    }
    this.authorize = options.authorize;
    this.maxPayload = options.maxPayload ?? DEFAULT_MAX_PAYLOAD;
    this.observeIo = options.observeIo;
    if (!Number.isInteger(this.maxPayload) || this.maxPayload < 4096 || this.maxPayload > 0x7fffffff) {
      throw new RangeError(`maxPayload must be an integer between 4096 and 2^31-1, got ${this.maxPayload}`);
    }
  }

  /** Listens; port 0 picks a free one. Rejects if the port is taken. */
  listen(host: string, port: number): Promise<{ host: string; port: number }> {
    if (this.server) return Promise.reject(new Error('NbdServer is already listening'));
    if (this.closing) return Promise.reject(new Error('NbdServer is closed'));
    const server = createServer({ allowHalfOpen: true }, (socket) => this.accept(socket));
    this.server = server;
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => {
        this.server = undefined;
        reject(err);
      };
      server.once('error', onError);
      server.listen(port, host, () => {
        server.off('error', onError);
        server.on('error', (err: Error) => this.log('nbd.server.error', { error: err.message }));
        const address = server.address();
        const bound = typeof address === 'object' && address !== null ? address : { address: host, port };
        this.log('nbd.server.listening', { host: bound.address, port: bound.port });
        resolve({ host: bound.address, port: bound.port });
      });
    });
  }

  /** Stops accepting, disconnects clients (closing their devices, which flushes), resolves when all are closed. */
  async close(): Promise<void> {
    this.closing = true;
    const server = this.server;
    const stopped = server?.listening
      ? new Promise<void>((resolve) => server.close(() => resolve()))
      : Promise.resolve();
    for (const connection of this.connections) connection.shutdown();
    await Promise.all([...this.connections].map((connection) => connection.done));
    await stopped;
    this.log('nbd.server.closed', {});
  }

  private accept(socket: Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const connection = new Connection(socket, this.provider, {
      maxPayload: this.maxPayload,
      log: this.log,
      shuttingDown: () => this.closing,
      tls: this.tls,
      authorize: this.authorize,
      ...(this.observeIo !== undefined && { observeIo: this.observeIo }),
    });
    this.connections.add(connection);
    void connection.done.then(() => this.connections.delete(connection));
  }
}
