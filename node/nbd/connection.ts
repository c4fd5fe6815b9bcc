/**
 * One client connection from accept to close: handshake, transmission, then closing the device (which flushes it and
 * frees the volume's writer slot) before the socket is ended.
 */
import type { Socket } from 'node:net';
import type { ExportProvider } from '../engine/types.js';
import { type NbdAuthorize, type NbdTlsMode, plaintextIdentity } from './access.js';
import { messageOf } from './errors.js';
import { negotiate } from './handshake.js';
import { SocketReader, StreamClosedError } from './socket-reader.js';
import { Transmission, type TransmissionEnd } from './transmission.js';

/** Told of each READ or WRITE that succeeded: its bytes and how long it took. */
export type IoObserver = (op: 'read' | 'write', bytes: number, seconds: number) => void;

/** Makes the IoObserver of a connection to export `exportName` (`VOLUME` or `VOLUME@SNAPSHOT`). */
export type IoObserverFactory = (exportName: string) => IoObserver | Promise<IoObserver>;

export interface ConnectionOptions {
  maxPayload: number;
  log: (event: string, fields: Record<string, unknown>) => void;
  shuttingDown: () => boolean;
  tls: { mode: NbdTlsMode; pskKey: ((identity: string) => Buffer | undefined) | undefined };
  authorize: NbdAuthorize | undefined;
  /** Default none. */
  observeIo?: IoObserverFactory;
}

/** How long an ended socket may take to flush its last bytes before it is destroyed. */
const END_GRACE_MS = 5000;

export class Connection {
  /** Resolves when the socket is closed and the device (if any) is closed. Never rejects. */
  readonly done: Promise<void>;
  private reader: SocketReader;
  private readonly remote: string;
  private transmission: Transmission | undefined;
  /** Resolves when the current socket (the TLS one after STARTTLS) has closed. */
  private closed: Promise<void>;

  constructor(
    private socket: Socket,
    private readonly provider: ExportProvider,
    private readonly options: ConnectionOptions,
  ) {
    this.remote = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    socket.setNoDelay(true);
    socket.on('error', (err: Error) => this.log('nbd.connection.error', { error: err.message }));
    this.reader = new SocketReader(socket, this.readerHighWater);
    this.closed = closedOf(socket);
    this.done = this.serve()
      .catch((err: unknown) => {
        this.log('nbd.connection.error', { error: messageOf(err) });
        this.socket.destroy();
      })
      .then(() => this.closed);
  }

  private get readerHighWater(): number {
    return this.options.maxPayload + 64 * 1024;
  }

  /** Server shutdown: drops a connection still negotiating; lets one in transmission finish what it has read. */
  shutdown(): void {
    if (this.transmission) this.transmission.stop();
    else {
      this.reader.stop();
      this.socket.destroy();
    }
  }

  /** The connection's IoObserver; undefined when there is none or making it failed (logged). */
  private async observerFor(exportName: string): Promise<IoObserver | undefined> {
    const factory = this.options.observeIo;
    if (factory === undefined) return undefined;
    try {
      const observe = await factory(exportName);
      return (op, bytes, seconds) => {
        try {
          observe(op, bytes, seconds);
        } catch {
          // Metrics never fail a request.
        }
      };
    } catch (err: unknown) {
      this.log('nbd.observer.failed', { export: exportName, error: messageOf(err) });
      return undefined;
    }
  }

  private log(event: string, fields: Record<string, unknown>): void {
    this.options.log(event, { remote: this.remote, ...fields });
  }

  private async serve(): Promise<void> {
    this.log('nbd.connection.open', {});
    let negotiated: Awaited<ReturnType<typeof negotiate>>;
    try {
      negotiated = await negotiate({
        socket: this.socket,
        reader: this.reader,
        provider: this.provider,
        maxPayload: this.options.maxPayload,
        log: (event, fields) => this.log(event, fields),
        shuttingDown: this.options.shuttingDown,
        tls: this.options.tls,
        plaintext: plaintextIdentity(this.options.tls.mode, this.socket.remoteAddress),
        authorize: this.options.authorize,
        upgraded: (socket, reader) => {
          socket.on('error', (err: Error) => this.log('nbd.connection.error', { error: err.message }));
          this.socket = socket;
          this.reader = reader;
          this.closed = closedOf(socket);
          if (this.options.shuttingDown()) this.shutdown();
        },
        readerHighWater: this.readerHighWater,
        holder: this.remote,
      });
    } catch (err: unknown) {
      if (!(err instanceof StreamClosedError)) throw err;
      negotiated = undefined;
    }
    const { socket, reader } = this;
    if (!negotiated) {
      this.log('nbd.connection.close', { phase: 'handshake' });
      // After NBD_OPT_ABORT the socket is already ending with the ACK in flight; anything else is a hard disconnect.
      if (socket.writableEnded) this.endGracefully();
      else socket.destroy();
      return;
    }
    const { device, exportName, identity } = negotiated;
    this.log('nbd.export.open', {
      export: exportName,
      read_only: device.readOnly,
      structured: negotiated.structured,
      identity: identity.kind === 'psk' ? identity.name : identity.kind,
    });
    const observe = await this.observerFor(exportName);
    const transmission = new Transmission({
      ...negotiated,
      socket,
      reader,
      ...(observe !== undefined && { observe }),
      maxPayload: this.options.maxPayload,
      log: (event, fields) => this.log(event, { export: exportName, ...fields }),
    });
    this.transmission = transmission;
    if (this.options.shuttingDown() || socket.destroyed) transmission.stop();
    let end: TransmissionEnd | 'error';
    try {
      end = await transmission.run();
    } catch (err: unknown) {
      this.log('nbd.connection.error', { export: exportName, error: messageOf(err) });
      end = 'error';
    }
    try {
      await device.close();
    } catch (err: unknown) {
      this.log('nbd.export.close.failed', { export: exportName, error: messageOf(err) });
    }
    this.log('nbd.connection.close', { export: exportName, reason: end });
    if (end === 'protocol-error' || end === 'error') socket.destroy();
    else this.endGracefully();
  }

  private endGracefully(): void {
    const { socket } = this;
    if (socket.destroyed) return;
    if (socket.writableFinished) {
      socket.destroy();
      return;
    }
    const timer = setTimeout(() => socket.destroy(), END_GRACE_MS);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
    socket.once('finish', () => socket.destroy());
    if (!socket.writableEnded) socket.end();
  }
}

function closedOf(socket: Socket): Promise<void> {
  if (socket.closed) return Promise.resolve();
  return new Promise<void>((resolve) => socket.once('close', () => resolve()));
}
