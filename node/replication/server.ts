/**
 * The replication server: accepts mutually authenticated TLS connections from the cluster's nodes and dispatches
 * each request (frame.ts) to the handler's replica, answering as each completes. Memory per connection is bounded:
 * when the requests being served hold `maxInFlightBytes`, the server stops reading the socket until replies drain.
 */
import type { AddressInfo, Socket } from 'node:net';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import { FerryError, toFerryError } from '../../common/index.js';
import { ByteQueue } from './byte-queue.js';
import {
  decodeRequestHeader,
  encodeReply,
  FLAG_FUA,
  Op,
  REQUEST_HEADER_BYTES,
  type RequestHeader,
  requestCost,
} from './frame.js';
import { authorizedPeer, tlsOptions } from './tls.js';
import type { NodeCredentials, ReplicationHandler } from './types.js';

export interface ReplicationServerOptions {
  credentials: NodeCredentials;
  handler: ReplicationHandler;
  /** Address to listen on; default 127.0.0.1. */
  host?: string;
  /** Port; default 0 (any free port; see `address`). */
  port?: number;
  /** Which authenticated node ids may connect; default: every node with a certificate from the cluster CA. */
  acceptPeer?: (nodeId: string) => boolean;
  /** Bytes of requests served at once per connection before the server stops reading it; default 16 MiB. */
  maxInFlightBytes?: number;
}

type Decoded = Omit<RequestHeader, 'volumeId'> & { volumeBytes: number };

export class ReplicationServer {
  /** Every TCP connection, handshaking or served, so that `close` can cut them all. */
  private readonly connections = new Set<Socket>();
  /** Connections refused after the handshake (unexpected node id). */
  refused = 0;

  private constructor(
    private readonly server: Server,
    private readonly options: ReplicationServerOptions,
  ) {}

  /** Starts listening. */
  static async listen(options: ReplicationServerOptions): Promise<ReplicationServer> {
    // The client certificate is required, and checked in `accept` (not by the handshake), so that a refused peer
    // is told why in a refusal frame before the connection closes.
    const server = createServer({ ...tlsOptions(options.credentials), requestCert: true, rejectUnauthorized: false });
    const self = new ReplicationServer(server, options);
    server.on('connection', (socket: Socket) => {
      self.connections.add(socket);
      socket.on('close', () => self.connections.delete(socket));
    });
    server.on('secureConnection', (socket) => self.accept(socket));
    server.on('tlsClientError', () => {
      self.refused += 1;
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) =>
        reject(new FerryError('UNAVAILABLE', `cannot listen for replication: ${err.message}`, { cause: err })),
      );
      server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
    });
    return self;
  }

  address(): { host: string; port: number } {
    const address = this.server.address() as AddressInfo;
    return { host: address.address, port: address.port };
  }

  /** Stops listening and cuts every connection (their clients' pending requests fail UNAVAILABLE). */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.connections) socket.destroy();
    await closed;
  }

  private accept(socket: TLSSocket): void {
    socket.on('error', () => socket.destroy());
    const peer = authorizedPeer(socket);
    const refusal =
      peer === undefined
        ? `its certificate is not from this cluster's CA (${String(socket.authorizationError ?? 'no certificate')}): issue it from the cluster CA`
        : this.options.acceptPeer !== undefined && !this.options.acceptPeer(peer)
          ? `node "${peer}" is not expected by this node`
          : undefined;
    if (refusal !== undefined) {
      this.refused += 1;
      socket.end(encodeReply(0, new FerryError('UNAUTHENTICATED', `connection refused: ${refusal}`), 0));
      return;
    }
    new Connection(socket, this.options.handler, this.options.maxInFlightBytes ?? 16 * 1024 * 1024).start();
  }
}

/** One connection's request loop. */
class Connection {
  private readonly queue = new ByteQueue();
  private header: Decoded | undefined;
  private volumeId = '';
  private inFlight = 0;
  private paused = false;

  constructor(
    private readonly socket: TLSSocket,
    private readonly handler: ReplicationHandler,
    private readonly limit: number,
  ) {}

  start(): void {
    this.socket.on('data', (chunk: Buffer) => {
      this.queue.push(chunk);
      try {
        this.parse();
      } catch {
        this.socket.destroy();
      }
    });
  }

  /** Serves the requests queued, until the queue runs dry or the connection holds its limit. */
  private parse(): void {
    while (!this.paused) {
      if (this.header === undefined) {
        const raw = this.queue.take(REQUEST_HEADER_BYTES);
        if (raw === undefined) return;
        this.header = decodeRequestHeader(raw);
        this.volumeId = '';
      }
      const header = this.header;
      if (this.volumeId === '' && header.volumeBytes > 0) {
        const raw = this.queue.take(header.volumeBytes);
        if (raw === undefined) return;
        this.volumeId = raw.toString('utf8');
      }
      const payload = this.queue.take(header.payloadBytes);
      if (payload === undefined) return;
      this.header = undefined;
      this.dispatch({ ...header, volumeId: this.volumeId }, payload);
    }
  }

  private dispatch(request: RequestHeader, payload: Buffer): void {
    const cost = requestCost(request.op, request.length);
    this.inFlight += cost;
    if (this.inFlight >= this.limit && !this.paused) {
      this.paused = true;
      this.socket.pause();
    }
    let served: Promise<Buffer | undefined>;
    try {
      served = this.serve(request, payload);
    } catch (err: unknown) {
      served = Promise.reject(err);
    }
    served.then(
      (data) => this.reply(request.id, undefined, data, cost),
      (err: unknown) => this.reply(request.id, toFerryError(err, 'replica failed'), undefined, cost),
    );
  }

  private serve(request: RequestHeader, payload: Buffer): Promise<Buffer | undefined> {
    if (request.op === Op.PING) return Promise.resolve(undefined);
    const served = this.handler.volume(request.volumeId);
    if (served === undefined) {
      return Promise.reject(new FerryError('NOT_FOUND', `no replica of volume "${request.volumeId}" on this node`));
    }
    if (request.epoch < served.epoch) {
      return Promise.reject(
        new FerryError(
          'FAILED_PRECONDITION',
          `stale epoch ${request.epoch} for volume "${request.volumeId}" (this replica holds epoch ${served.epoch}): the sender is no longer its coordinator`,
        ),
      );
    }
    const fua = { fua: (request.flags & FLAG_FUA) !== 0 };
    const replica = served.replica;
    switch (request.op) {
      case Op.WRITE:
        return replica.write(request.offset, payload, fua).then(() => undefined);
      case Op.ZERO:
        return replica.writeZeroes(request.offset, request.length, fua).then(() => undefined);
      case Op.TRIM:
        return replica.trim(request.offset, request.length, fua).then(() => undefined);
      case Op.FLUSH:
        return replica.flush().then(() => undefined);
      case Op.READ:
        return replica.read(request.offset, request.length).then((data) => {
          if (data.length !== request.length) {
            throw new FerryError('INTERNAL', `the replica read ${data.length} bytes, not ${request.length}`);
          }
          return data;
        });
    }
  }

  private reply(id: number, error: FerryError | undefined, data: Buffer | undefined, cost: number): void {
    const done = () => {
      this.inFlight -= cost;
      if (this.paused && this.inFlight < this.limit) {
        this.paused = false;
        this.socket.resume();
        try {
          this.parse();
        } catch {
          this.socket.destroy();
        }
      }
    };
    if (this.socket.destroyed) {
      done();
      return;
    }
    const header = encodeReply(id, error, data?.length ?? 0);
    if (data === undefined || data.length === 0) {
      this.socket.write(header, done);
      return;
    }
    this.socket.cork();
    this.socket.write(header);
    this.socket.write(data, done);
    this.socket.uncork();
  }
}
