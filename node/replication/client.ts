/**
 * The replication client: one mutually authenticated TLS connection to a peer node, pipelined (many requests in
 * flight, replies matched by id in any order). The bytes in flight are bounded by a window: a sender waits for
 * room. When the connection is lost every pending and waiting request fails UNAVAILABLE, and so does every later one.
 */
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { FerryError } from '../../common/index.js';
import type { WriteOptions } from '../engine/types.js';
import { ByteQueue } from './byte-queue.js';
import {
  decodeReplyHeader,
  encodeRequest,
  FLAG_FUA,
  MAX_PAYLOAD_BYTES,
  Op,
  REPLY_HEADER_BYTES,
  type ReplyHeader,
  replyError,
  requestCost,
} from './frame.js';
import { isTlsRefusal, peerNodeId, tlsOptions } from './tls.js';
import type { NodeCredentials, VolumeTarget } from './types.js';
import { ByteWindow } from './window.js';

export interface ReplicationClientOptions {
  credentials: NodeCredentials;
  host: string;
  port: number;
  /** The node id the peer's certificate must name; any other peer is refused (UNAUTHENTICATED). */
  expectedNodeId: string;
  /** Bytes of requests in flight at most (WRITE data, READ lengths, headers); default 8 MiB. */
  maxInFlightBytes?: number;
  /** Aborts the connection attempt. */
  signal?: AbortSignal;
}

interface Pending {
  cost: number;
  resolve: (data: Buffer) => void;
  reject: (err: FerryError) => void;
}

interface Request {
  op: Op;
  target: VolumeTarget;
  offset?: number;
  length?: number;
  data?: Buffer;
  fua?: boolean;
}

const PING_TARGET: VolumeTarget = { volumeId: '', epoch: 0 };

export class ReplicationClient {
  private readonly pending = new Map<number, Pending>();
  private readonly window: ByteWindow;
  private readonly queue = new ByteQueue();
  private reply: (ReplyHeader & { message?: string }) | undefined;
  private nextId = 1;
  private failure: FerryError | undefined;

  private constructor(
    private readonly socket: TLSSocket,
    readonly peerNodeId: string,
    maxInFlightBytes: number,
  ) {
    this.window = new ByteWindow(maxInFlightBytes);
    socket.on('data', (chunk: Buffer) => {
      this.queue.push(chunk);
      try {
        this.parse();
      } catch (err: unknown) {
        this.fail(err instanceof FerryError ? err : this.lost(err));
        socket.destroy();
      }
    });
    socket.on('error', (err) => this.fail(isTlsRefusal(err) ? this.refusedBy(err) : this.lost(err)));
    socket.on('close', () => this.fail(this.lost(undefined)));
  }

  /** Connects to the peer, checks its certificate names `expectedNodeId`, and waits until the peer accepts us. */
  static async connect(options: ReplicationClientOptions): Promise<ReplicationClient> {
    const expected = options.expectedNodeId;
    options.signal?.throwIfAborted();
    let identityError: Error | undefined;
    const socket = tlsConnect({
      ...tlsOptions(options.credentials),
      host: options.host,
      port: options.port,
      checkServerIdentity: (_host, cert) => {
        const named = peerNodeId(cert);
        if (named === expected) return undefined;
        identityError = new Error(`the peer is node "${named ?? ''}", not "${expected}"`);
        return identityError;
      },
    });
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => socket.destroy(new Error('connection aborted'));
      const onError = (err: Error) => {
        options.signal?.removeEventListener('abort', onAbort);
        socket.destroy();
        reject(
          isTlsRefusal(err) || err === identityError
            ? new FerryError('UNAUTHENTICATED', `replication to node ${expected} refused: ${err.message}`, {
                cause: err,
              })
            : new FerryError(
                'UNAVAILABLE',
                `cannot reach node ${expected} at ${options.host}:${options.port}: ${err.message}`,
                {
                  cause: err,
                },
              ),
        );
      };
      options.signal?.addEventListener('abort', onAbort, { once: true });
      socket.once('error', onError);
      socket.once('secureConnect', () => {
        options.signal?.removeEventListener('abort', onAbort);
        socket.off('error', onError);
        resolve();
      });
    });
    const client = new ReplicationClient(socket, expected, options.maxInFlightBytes ?? 8 * 1024 * 1024);
    try {
      await client.ping();
    } catch (err: unknown) {
      socket.destroy();
      throw err;
    }
    return client;
  }

  /** Bytes in flight now (never above the window, but for one request larger than the window, alone). */
  get inFlightBytes(): number {
    return this.window.inFlight;
  }

  /** Requests waiting for room in the window. */
  get waitingRequests(): number {
    return this.window.waiting;
  }

  ping(): Promise<void> {
    return this.send({ op: Op.PING, target: PING_TARGET }).then(() => undefined);
  }

  write(target: VolumeTarget, offset: number, data: Buffer, options?: WriteOptions): Promise<void> {
    return this.send({ op: Op.WRITE, target, offset, data, fua: options?.fua }).then(() => undefined);
  }

  writeZeroes(target: VolumeTarget, offset: number, length: number, options?: WriteOptions): Promise<void> {
    return this.send({ op: Op.ZERO, target, offset, length, fua: options?.fua }).then(() => undefined);
  }

  trim(target: VolumeTarget, offset: number, length: number, options?: WriteOptions): Promise<void> {
    return this.send({ op: Op.TRIM, target, offset, length, fua: options?.fua }).then(() => undefined);
  }

  flush(target: VolumeTarget): Promise<void> {
    return this.send({ op: Op.FLUSH, target }).then(() => undefined);
  }

  /** The bytes at [offset, offset+length) of the peer's replica. */
  read(target: VolumeTarget, offset: number, length: number): Promise<Buffer> {
    return this.send({ op: Op.READ, target, offset, length });
  }

  /** Closes the connection; requests still pending fail UNAVAILABLE. */
  close(): Promise<void> {
    this.fail(new FerryError('UNAVAILABLE', `the replication connection to node ${this.peerNodeId} was closed`));
    if (this.socket.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      this.socket.once('close', () => resolve());
      this.socket.end();
      // A peer that does not answer the end is cut.
      setTimeout(() => this.socket.destroy(), 5_000).unref();
    });
  }

  private send(request: Request): Promise<Buffer> {
    const length = request.data?.length ?? request.length ?? 0;
    if (length > MAX_PAYLOAD_BYTES || length > 0xffffffff) {
      return Promise.reject(
        new FerryError('INVALID_ARGUMENT', `length: ${length} bytes is more than ${MAX_PAYLOAD_BYTES} in one request`),
      );
    }
    const cost = requestCost(request.op, length);
    if (this.failure !== undefined) return Promise.reject(this.failure);
    // Room now: reserve and send synchronously, so requests leave in the order they were made.
    if (this.window.tryAcquire(cost)) return this.transmit(request, cost, length);
    return this.window.acquire(cost).then(() => this.transmit(request, cost, length));
  }

  private transmit(request: Request, cost: number, length: number): Promise<Buffer> {
    if (this.failure !== undefined) {
      this.window.release(cost);
      return Promise.reject(this.failure);
    }
    let id = this.nextId;
    while (this.pending.has(id)) id = id >= 0xffffffff ? 1 : id + 1;
    this.nextId = id >= 0xffffffff ? 1 : id + 1;
    const header = encodeRequest({
      op: request.op,
      flags: request.fua === true ? FLAG_FUA : 0,
      id,
      volumeId: request.target.volumeId,
      epoch: request.target.epoch,
      offset: request.offset ?? 0,
      length,
      payloadBytes: request.data?.length ?? 0,
    });
    const reply = new Promise<Buffer>((resolve, reject) => this.pending.set(id, { cost, resolve, reject }));
    this.socket.cork();
    this.socket.write(header);
    if (request.data !== undefined && request.data.length > 0) this.socket.write(request.data);
    this.socket.uncork();
    return reply;
  }

  private parse(): void {
    for (;;) {
      if (this.reply === undefined) {
        const raw = this.queue.take(REPLY_HEADER_BYTES);
        if (raw === undefined) return;
        this.reply = decodeReplyHeader(raw);
      }
      const reply = this.reply;
      if (reply.message === undefined) {
        const raw = this.queue.take(reply.messageBytes);
        if (raw === undefined) return;
        reply.message = raw.toString('utf8');
      }
      const payload = this.queue.take(reply.payloadBytes);
      if (payload === undefined) return;
      this.reply = undefined;
      this.settle(reply, reply.message, payload);
    }
  }

  private settle(reply: ReplyHeader, message: string, payload: Buffer): void {
    if (reply.id === 0) {
      this.fail(replyError(reply.status, message, this.peerNodeId));
      this.socket.destroy();
      return;
    }
    const pending = this.pending.get(reply.id);
    if (pending === undefined) {
      throw new FerryError(
        'DATA_CORRUPTION',
        `node ${this.peerNodeId} answered request ${reply.id}, which is not pending`,
      );
    }
    this.pending.delete(reply.id);
    this.window.release(pending.cost);
    if (reply.status === 0) pending.resolve(payload);
    else pending.reject(replyError(reply.status, message, this.peerNodeId));
  }

  private lost(cause: unknown): FerryError {
    const detail = cause instanceof Error ? `: ${cause.message}` : '';
    return new FerryError('UNAVAILABLE', `the replication connection to node ${this.peerNodeId} was lost${detail}`, {
      cause,
    });
  }

  private refusedBy(cause: unknown): FerryError {
    const detail = cause instanceof Error ? cause.message : String(cause);
    return new FerryError(
      'UNAUTHENTICATED',
      `node ${this.peerNodeId} refused this node (${detail}): check its certificate is from the cluster CA`,
      {
        cause,
      },
    );
  }

  /** Fails every pending and waiting request, and every later one, with `err` (the first failure wins). */
  private fail(err: FerryError): void {
    this.failure ??= err;
    const failure = this.failure;
    this.window.fail(failure);
    for (const [id, pending] of this.pending) {
      this.pending.delete(id);
      this.window.release(pending.cost);
      pending.reject(failure);
    }
  }
}
