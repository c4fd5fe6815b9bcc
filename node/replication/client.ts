/**
 * The replication client: one mutually authenticated TLS connection to a peer node, pipelined (many requests in
 * flight, replies matched by id in any order). The bytes in flight are bounded by a window: a request waits for room
 * and requests leave in the order they were made. Requests made in one tick go out in one batched socket write. A
 * request unanswered within the timeout (R6) fails UNAVAILABLE and ends the connection; when the connection is lost
 * every pending and waiting request fails UNAVAILABLE, and so does every later one.
 */
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { FerryError } from '../../common/index.js';
import { ByteQueue } from './byte-queue.js';
import {
  decodeReplyHeader,
  MAX_PAYLOAD_BYTES,
  Op,
  REPLY_HEADER_BYTES,
  REQUEST_HEADER_BYTES,
  type ReplyHeader,
  replyError,
  requestCost,
  writeRequestHeader,
} from './frame.js';
import { TickCork } from './tick-cork.js';
import { isTlsRefusal, peerNodeId, tlsOptions } from './tls.js';
import type { NodeCredentials } from './types.js';
import { ByteWindow } from './window.js';

export interface ReplicationClientOptions {
  credentials: NodeCredentials;
  host: string;
  port: number;
  /** The node id the peer's certificate must name; any other peer is refused (UNAUTHENTICATED). */
  expectedNodeId: string;
  /** Bytes of requests in flight at most (headers, payloads, READ lengths); default 32 MiB. */
  maxInFlightBytes?: number;
  /** A request not answered within this many milliseconds fails UNAVAILABLE and ends the connection; default 5000. */
  requestTimeoutMs?: number;
  /** The TLS handshake and the peer's first answer must come within this many milliseconds; default 10000. */
  connectTimeoutMs?: number;
  /** Aborts the connection attempt. */
  signal?: AbortSignal;
}

/** A successful reply: its `value` field and its payload. */
export interface Answer {
  value: number;
  payload: Buffer;
}

/** One request, as the caller gives it. */
export interface Call {
  op: Op;
  handle: number;
  epoch: number;
  /** Byte offset (or the snapshot token); default 0. */
  offset?: number;
  /** Bytes (READ, ZERO, TRIM, BLOCK_STATUS); a WRITE's is its payload's length. */
  length?: number;
  flags?: number;
  payload?: Buffer;
  /** READ: the buffer the data is copied into (its first `length` bytes). */
  into?: Buffer;
}

interface Pending {
  op: Op;
  cost: number;
  sentAt: number;
  into: Buffer | undefined;
  resolve: (answer: Answer) => void;
  reject: (err: FerryError) => void;
}

const OP_NAMES = new Map<number, string>(Object.entries(Op).map(([name, op]) => [op, name]));
const EMPTY = Buffer.alloc(0);

export class ReplicationClient {
  private readonly pending = new Map<number, Pending>();
  private readonly window: ByteWindow;
  private readonly queue = new ByteQueue();
  private reply: (ReplyHeader & { message?: string }) | undefined;
  private nextId = 1;
  private failure: FerryError | undefined;
  private readonly sweeper: NodeJS.Timeout;
  /** Requests time out only once connected (the connect has its own timeout). */
  private connected = false;
  private readonly cork: TickCork;

  private constructor(
    private readonly socket: TLSSocket,
    readonly peerNodeId: string,
    maxInFlightBytes: number,
    private readonly timeoutMs: number,
  ) {
    this.window = new ByteWindow(maxInFlightBytes);
    this.cork = new TickCork(socket);
    // Requests are batched per event-loop turn already: Nagle's algorithm would only hold small ones for an ACK.
    socket.setNoDelay(true);
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
    this.sweeper = setInterval(() => this.sweep(), Math.max(10, Math.min(1000, timeoutMs / 4)));
    this.sweeper.unref();
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
    const timeoutMs = options.requestTimeoutMs ?? 5_000;
    const connectMs = options.connectTimeoutMs ?? 10_000;
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => socket.destroy(new Error('connection aborted'));
      const timer = setTimeout(() => socket.destroy(new Error(`no TLS handshake within ${connectMs} ms`)), connectMs);
      const onError = (err: Error) => {
        clearTimeout(timer);
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
                { cause: err },
              ),
        );
      };
      options.signal?.addEventListener('abort', onAbort, { once: true });
      socket.once('error', onError);
      socket.once('secureConnect', () => {
        clearTimeout(timer);
        options.signal?.removeEventListener('abort', onAbort);
        socket.off('error', onError);
        resolve();
      });
    });
    const client = new ReplicationClient(socket, expected, options.maxInFlightBytes ?? 32 * 1024 * 1024, timeoutMs);
    const timer = setTimeout(() => {
      client.fail(
        new FerryError('UNAVAILABLE', `node ${expected} did not answer within ${connectMs} ms of connecting`),
      );
      socket.destroy();
    }, connectMs);
    try {
      await client.ping();
    } catch (err: unknown) {
      client.fail(err instanceof FerryError ? err : client.lost(err));
      socket.destroy();
      throw err;
    } finally {
      clearTimeout(timer);
    }
    client.connected = true;
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

  /** Whether the connection is gone (every request now fails). */
  get broken(): boolean {
    return this.failure !== undefined;
  }

  ping(): Promise<void> {
    return this.call({ op: Op.PING, handle: 0, epoch: 0 }).then(() => undefined);
  }

  /** Sends one request; resolves with the reply's value and payload, rejects with the reply's error. */
  call(call: Call): Promise<Answer> {
    const payloadBytes = call.payload?.length ?? 0;
    const length = call.op === Op.WRITE ? payloadBytes : (call.length ?? 0);
    if (
      length > 0xffffffff ||
      payloadBytes > MAX_PAYLOAD_BYTES ||
      (call.op === Op.READ && length > MAX_PAYLOAD_BYTES)
    ) {
      return Promise.reject(
        new FerryError(
          'INVALID_ARGUMENT',
          `length: ${Math.max(length, payloadBytes)} bytes is more than one replication request carries (${MAX_PAYLOAD_BYTES})`,
        ),
      );
    }
    if (this.failure !== undefined) return Promise.reject(this.failure);
    const cost = requestCost(call.op, length, payloadBytes);
    return new Promise<Answer>((resolve, reject) => {
      this.window.acquire(cost, () => this.transmit(call, cost, length, payloadBytes, resolve, reject), reject);
    });
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

  private transmit(
    call: Call,
    cost: number,
    length: number,
    payloadBytes: number,
    resolve: (answer: Answer) => void,
    reject: (err: FerryError) => void,
  ): void {
    if (this.failure !== undefined) {
      this.window.release(cost);
      reject(this.failure);
      return;
    }
    let id = this.nextId;
    while (this.pending.has(id)) id = id >= 0xffffffff ? 1 : id + 1;
    this.nextId = id >= 0xffffffff ? 1 : id + 1;
    const header = Buffer.allocUnsafe(REQUEST_HEADER_BYTES);
    writeRequestHeader(header, 0, {
      op: call.op,
      flags: call.flags ?? 0,
      id,
      payloadBytes,
      epoch: call.epoch,
      offset: call.offset ?? 0,
      length,
      handle: call.handle,
    });
    this.pending.set(id, { op: call.op, cost, sentAt: Date.now(), into: call.into, resolve, reject });
    // Every request of this tick goes out in one write (one TLS record where they fit).
    this.cork.hold();
    this.socket.write(header);
    if (call.payload !== undefined && payloadBytes > 0) this.socket.write(call.payload);
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
        reply.message = reply.messageBytes === 0 ? '' : raw.toString('utf8');
      }
      if (this.queue.length < reply.payloadBytes) return;
      this.reply = undefined;
      this.settle(reply, reply.message);
    }
  }

  /** Settles the request `reply` answers; its payload (all queued) is taken here. */
  private settle(reply: ReplyHeader, message: string): void {
    if (reply.id === 0) {
      this.fail(replyError(reply, message, this.peerNodeId));
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
    let payload: Buffer;
    if (reply.status === 0 && pending.into !== undefined && reply.payloadBytes <= pending.into.length) {
      payload = pending.into.subarray(0, reply.payloadBytes);
      this.queue.takeInto(payload, reply.payloadBytes);
    } else {
      payload = reply.payloadBytes === 0 ? EMPTY : (this.queue.take(reply.payloadBytes) as Buffer);
    }
    this.window.release(pending.cost);
    if (reply.status === 0) pending.resolve({ value: reply.value, payload });
    else pending.reject(replyError(reply, message, this.peerNodeId));
  }

  /** Fails the connection when its oldest request has waited longer than the timeout (R6). */
  private sweep(): void {
    if (this.failure !== undefined || !this.connected) return;
    const now = Date.now();
    for (const pending of this.pending.values()) {
      if (now - pending.sentAt > this.timeoutMs) {
        this.fail(
          new FerryError(
            'UNAVAILABLE',
            `node ${this.peerNodeId} did not answer a ${OP_NAMES.get(pending.op) ?? 'request'} within ${this.timeoutMs} ms: the replication connection is closed`,
          ),
        );
        this.socket.destroy();
      }
      return;
    }
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
      { cause },
    );
  }

  /** Fails every pending and waiting request, and every later one, with `err` (the first failure wins). */
  private fail(err: FerryError): void {
    this.failure ??= err;
    clearInterval(this.sweeper);
    const failure = this.failure;
    this.window.fail(failure);
    for (const [id, pending] of this.pending) {
      this.pending.delete(id);
      this.window.release(pending.cost);
      pending.reject(failure);
    }
  }
}
