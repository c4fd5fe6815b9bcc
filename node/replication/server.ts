/**
 * The replication server: accepts mutually authenticated TLS connections from the cluster's nodes and dispatches
 * each request (frame.ts) to the session the handler gives the connection, answering as each completes; the replies
 * of one tick go out in one batched socket write. Memory per connection is bounded: when the requests being served
 * hold `maxInFlightBytes`, the server stops reading the socket until replies drain.
 */
import type { AddressInfo, Socket } from 'node:net';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import { FerryError, toFerryError } from '../../common/index.js';
import { directBuffer } from '../engine/layer.js';
import { ByteQueue } from './byte-queue.js';
import {
  decodeRequestHeader,
  encodeReply,
  FLAG_UNCACHED,
  Op,
  REPLY_FLAG_STALE_EPOCH,
  REQUEST_HEADER_BYTES,
  type RequestHeader,
  requestCost,
  StaleEpochError,
} from './frame.js';
import { TickCork } from './tick-cork.js';
import { authorizedPeer, tlsOptions } from './tls.js';
import type { NodeCredentials, ReplicationHandler, ReplicationSession, Served } from './types.js';

export interface ReplicationServerOptions {
  credentials: NodeCredentials;
  handler: ReplicationHandler;
  /** Address to listen on; default 127.0.0.1. */
  host?: string;
  /** Port; default 0 (any free port; see `address`). */
  port?: number;
  /** Which authenticated node ids may connect; default: every node with a certificate from the cluster CA. */
  acceptPeer?: (nodeId: string) => boolean;
  /** Bytes of requests served at once per connection before the server stops reading it; default 32 MiB. */
  maxInFlightBytes?: number;
}

export class ReplicationServer {
  /** Every TCP connection, handshaking or served, so that `close` can cut them all. */
  private readonly connections = new Set<Socket>();
  /** Sessions of ended connections still releasing what they opened. */
  private readonly closing = new Set<Promise<void>>();
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
      // Replies are small and batched already: Nagle's algorithm would only hold them for an ACK.
      socket.setNoDelay(true);
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

  /**
   * Stops listening and cuts every connection (their clients' pending requests fail UNAVAILABLE); resolves once
   * their sessions have released what they opened.
   */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.connections) socket.destroy();
    await closed;
    // The sockets' close events (which start the sessions' release) may come just after the server's.
    await new Promise<void>((resolve) => setImmediate(resolve));
    await Promise.allSettled([...this.closing]);
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
      socket.end(encodeReply(0, new FerryError('UNAUTHENTICATED', `connection refused: ${refusal}`), 0, 0));
      return;
    }
    let session: ReplicationSession;
    try {
      session = this.options.handler.connect(peer as string);
    } catch (err: unknown) {
      socket.end(encodeReply(0, toFerryError(err, 'the replication server cannot serve this connection'), 0, 0));
      return;
    }
    socket.once('close', () => {
      const released = session.close().catch(() => undefined);
      this.closing.add(released);
      void released.finally(() => this.closing.delete(released));
    });
    new Connection(socket, session, this.options.maxInFlightBytes ?? 32 * 1024 * 1024).start();
  }
}

/** One connection's request loop. */
class Connection {
  private readonly queue = new ByteQueue();
  private header: RequestHeader | undefined;
  private inFlight = 0;
  private paused = false;
  private readonly cork: TickCork;

  constructor(
    private readonly socket: TLSSocket,
    private readonly session: ReplicationSession,
    private readonly limit: number,
  ) {
    this.cork = new TickCork(socket);
  }

  start(): void {
    this.socket.on('data', (chunk: Buffer) => {
      this.queue.push(chunk);
      this.parseOrCut();
    });
  }

  private parseOrCut(): void {
    try {
      this.parse();
    } catch {
      this.socket.destroy();
    }
  }

  /** Serves the requests queued, until the queue runs dry or the connection holds its limit. */
  private parse(): void {
    while (!this.paused) {
      if (this.header === undefined) {
        const raw = this.queue.take(REQUEST_HEADER_BYTES);
        if (raw === undefined) return;
        this.header = decodeRequestHeader(raw);
      }
      const header = this.header;
      const payload = this.takePayload(header);
      if (payload === undefined) return;
      this.header = undefined;
      this.dispatch(header, payload);
    }
  }

  /**
   * The request's payload once all of it is queued. An UNCACHED WRITE's is copied into page-aligned memory, so that
   * the replica can write it past the page cache (the copy out of the TLS chunks is made anyway).
   */
  private takePayload(header: RequestHeader): Buffer | undefined {
    const bytes = header.payloadBytes;
    if (header.op !== Op.WRITE || (header.flags & FLAG_UNCACHED) === 0 || bytes === 0) return this.queue.take(bytes);
    if (this.queue.length < bytes) return undefined;
    const out = directBuffer(bytes);
    this.queue.takeInto(out, bytes);
    return out;
  }

  private dispatch(request: RequestHeader, payload: Buffer): void {
    const cost = requestCost(request.op, request.length, request.payloadBytes);
    this.inFlight += cost;
    if (this.inFlight >= this.limit && !this.paused) {
      this.paused = true;
      this.socket.pause();
    }
    let served: Promise<Served>;
    if (request.op === Op.PING) served = Promise.resolve(NOTHING);
    else {
      try {
        served = this.session.serve(request, payload);
      } catch (err: unknown) {
        served = Promise.reject(err);
      }
    }
    served.then(
      (answer) => this.reply(request.id, undefined, answer, cost),
      (err: unknown) => this.reply(request.id, toFerryError(err, 'replica failed'), NOTHING, cost),
    );
  }

  private reply(id: number, error: FerryError | undefined, answer: Served, cost: number): void {
    const done = () => {
      this.inFlight -= cost;
      if (this.paused && this.inFlight < this.limit) {
        this.paused = false;
        this.socket.resume();
        this.parseOrCut();
      }
    };
    if (this.socket.destroyed) {
      done();
      return;
    }
    const stale = error instanceof StaleEpochError;
    const payload = error === undefined ? answer.payload : undefined;
    const header = encodeReply(
      id,
      error,
      payload?.length ?? 0,
      stale ? error.heldEpoch : (answer.value ?? 0),
      stale ? REPLY_FLAG_STALE_EPOCH : 0,
    );
    this.cork.hold();
    if (payload === undefined || payload.length === 0) {
      this.socket.write(header, done);
      return;
    }
    this.socket.write(header);
    this.socket.write(payload, done);
  }
}

const NOTHING: Served = {};
