/**
 * A small NBD client for the chaos workload: fixed newstyle handshake, NBD_OPT_GO, then simple replies only
 * (no structured replies asked for). Requests may be in flight together; each has a deadline after which the whole
 * connection is given up (a node that stopped answering looks like that), and any failure fails every request in
 * flight. The protocol constants are the NBD protocol's (github.com/NetworkBlockDevice/nbd, doc/proto.md).
 */
import net from 'node:net';

const IHAVEOPT = 0x49484156454f5054n;
const OPTION_REPLY_MAGIC = 0x3e889045565a9n;
const REQUEST_MAGIC = 0x25609513;
const SIMPLE_REPLY_MAGIC = 0x67446698;
const FLAG_C_FIXED_NEWSTYLE = 1;
const FLAG_C_NO_ZEROES = 2;
const OPT_GO = 7;
const REP_ACK = 1;
const REP_INFO = 3;
const INFO_EXPORT = 0;
const CMD_READ = 0;
const CMD_WRITE = 1;
const CMD_DISC = 2;
const CMD_FLUSH = 3;

/** An NBD request that failed: the server's error number, or the connection's end. */
export class NbdRequestError extends Error {
  constructor(
    message: string,
    /** The server's errno (e.g. 5 EIO, 30 EROFS); undefined when the connection broke. */
    readonly errno?: number,
  ) {
    super(message);
    this.name = 'NbdRequestError';
  }
}

/** Options of NbdClient.connect. */
export interface NbdConnectOptions {
  host: string;
  port: number;
  /** The export (volume) name. */
  name: string;
  /** Longest wait for the connection and handshake, ms; default 5000. */
  connectTimeoutMs?: number;
  /** Longest wait for any request's reply, ms; default 10 000. */
  requestTimeoutMs?: number;
}

interface Pending {
  readLength: number;
  resolve: (data: Buffer) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/** One NBD connection in transmission phase. */
export class NbdClient {
  private buffered: Buffer = Buffer.alloc(0);
  private readonly pending = new Map<bigint, Pending>();
  private nextHandle = 1n;
  private failure: Error | undefined;

  private constructor(
    private readonly socket: net.Socket,
    /** The export's size in bytes. */
    readonly size: number,
    private readonly requestTimeoutMs: number,
  ) {
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('error', (err) => this.fail(new NbdRequestError(`connection failed: ${err.message}`)));
    socket.on('close', () => this.fail(new NbdRequestError('connection closed')));
  }

  /** Connects, negotiates `name` with NBD_OPT_GO, and enters transmission. */
  static async connect(options: NbdConnectOptions): Promise<NbdClient> {
    const socket = net.connect({ host: options.host, port: options.port });
    socket.setNoDelay(true);
    const timeout = options.connectTimeoutMs ?? 5000;
    const timer = setTimeout(
      () => socket.destroy(new Error(`NBD handshake with ${options.host}:${options.port} timed out`)),
      timeout,
    );
    try {
      const size = await handshake(socket, options.name);
      return new NbdClient(socket, size, options.requestTimeoutMs ?? 10_000);
    } catch (err: unknown) {
      socket.destroy();
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Writes `data` at `offset`; resolves on the server's reply. */
  async write(offset: number, data: Buffer): Promise<void> {
    await this.request(CMD_WRITE, offset, data.length, 0, data);
  }

  /** NBD_CMD_FLUSH: resolves once the server says every completed write is durable. */
  async flush(): Promise<void> {
    await this.request(CMD_FLUSH, 0, 0, 0);
  }

  /** Reads `length` bytes at `offset`. */
  read(offset: number, length: number): Promise<Buffer> {
    return this.request(CMD_READ, offset, length, length);
  }

  /** Sends NBD_CMD_DISC and closes (or just closes a broken connection). */
  close(): void {
    if (this.failure === undefined && !this.socket.destroyed) {
      this.socket.write(requestHeader(CMD_DISC, 0n, 0, 0));
      this.socket.end();
    }
    this.fail(new NbdRequestError('closed by the client'));
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  /** Breaks the connection at once (as a crash of the client would). */
  destroy(): void {
    this.socket.destroy();
    this.fail(new NbdRequestError('destroyed by the client'));
  }

  private request(type: number, offset: number, length: number, readLength: number, data?: Buffer): Promise<Buffer> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    const handle = this.nextHandle++;
    return new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => {
        const err = new NbdRequestError(`request ${handle} got no reply in ${this.requestTimeoutMs} ms`);
        this.fail(err);
        this.socket.destroy();
      }, this.requestTimeoutMs);
      this.pending.set(handle, { readLength, resolve, reject, timer });
      this.socket.write(requestHeader(type, handle, offset, length));
      if (data !== undefined) this.socket.write(data);
    });
  }

  private onData(d: Buffer): void {
    this.buffered = this.buffered.length === 0 ? d : Buffer.concat([this.buffered, d]);
    for (;;) {
      if (this.buffered.length < 16) return;
      const magic = this.buffered.readUInt32BE(0);
      if (magic !== SIMPLE_REPLY_MAGIC) {
        this.fail(new NbdRequestError(`bad reply magic 0x${magic.toString(16)}`));
        this.socket.destroy();
        return;
      }
      const errno = this.buffered.readUInt32BE(4);
      const handle = this.buffered.readBigUInt64BE(8);
      const waiting = this.pending.get(handle);
      if (waiting === undefined) {
        this.fail(new NbdRequestError(`reply to unknown handle ${handle}`));
        this.socket.destroy();
        return;
      }
      const payload = errno === 0 ? waiting.readLength : 0;
      if (this.buffered.length < 16 + payload) return;
      const body = Buffer.from(this.buffered.subarray(16, 16 + payload));
      this.buffered = this.buffered.subarray(16 + payload);
      this.pending.delete(handle);
      clearTimeout(waiting.timer);
      if (errno === 0) waiting.resolve(body);
      else waiting.reject(new NbdRequestError(`server error ${errno}`, errno));
    }
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(this.failure);
    }
    this.pending.clear();
  }
}

function requestHeader(type: number, handle: bigint, offset: number, length: number): Buffer {
  const b = Buffer.alloc(28);
  b.writeUInt32BE(REQUEST_MAGIC, 0);
  b.writeUInt16BE(0, 4);
  b.writeUInt16BE(type, 6);
  b.writeBigUInt64BE(handle, 8);
  b.writeBigUInt64BE(BigInt(offset), 16);
  b.writeUInt32BE(length, 24);
  return b;
}

/** Reads exactly `n` bytes during the handshake. */
function reader(socket: net.Socket): (n: number) => Promise<Buffer> {
  let buffered: Buffer = Buffer.alloc(0);
  let waiter: (() => void) | undefined;
  let ended: Error | undefined;
  const onData = (d: Buffer): void => {
    buffered = Buffer.concat([buffered, d]);
    waiter?.();
  };
  const onEnd = (err?: Error): void => {
    ended = err ?? new Error('connection closed during the NBD handshake');
    waiter?.();
  };
  socket.on('data', onData);
  socket.on('error', onEnd);
  socket.on('close', () => onEnd());
  return async (n: number) => {
    while (buffered.length < n) {
      if (ended !== undefined) throw ended;
      await new Promise<void>((resolve) => {
        waiter = resolve;
      });
      waiter = undefined;
    }
    const out = buffered.subarray(0, n);
    buffered = buffered.subarray(n);
    return out;
  };
}

/** The fixed newstyle handshake and NBD_OPT_GO; resolves with the export's size. */
async function handshake(socket: net.Socket, name: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const read = reader(socket);
  const greeting = await read(18);
  if (greeting.readBigUInt64BE(8) !== IHAVEOPT) throw new Error('not a fixed newstyle NBD server');
  const flags = Buffer.alloc(4);
  flags.writeUInt32BE(FLAG_C_FIXED_NEWSTYLE | FLAG_C_NO_ZEROES);
  const nameBytes = Buffer.from(name);
  const data = Buffer.alloc(4 + nameBytes.length + 2);
  data.writeUInt32BE(nameBytes.length, 0);
  nameBytes.copy(data, 4);
  data.writeUInt16BE(0, 4 + nameBytes.length);
  const header = Buffer.alloc(16);
  header.writeBigUInt64BE(IHAVEOPT, 0);
  header.writeUInt32BE(OPT_GO, 8);
  header.writeUInt32BE(data.length, 12);
  socket.write(Buffer.concat([flags, header, data]));
  let size: number | undefined;
  for (;;) {
    const reply = await read(20);
    if (reply.readBigUInt64BE(0) !== OPTION_REPLY_MAGIC) throw new Error('bad option reply magic');
    const type = reply.readUInt32BE(12);
    const body = await read(reply.readUInt32BE(16));
    if (type === REP_INFO && body.readUInt16BE(0) === INFO_EXPORT) size = Number(body.readBigUInt64BE(2));
    else if (type === REP_ACK) break;
    else if (type !== REP_INFO) throw new Error(`NBD_OPT_GO refused (0x${type.toString(16)}): ${body.toString()}`);
  }
  socket.removeAllListeners('data');
  socket.removeAllListeners('error');
  socket.removeAllListeners('close');
  if (size === undefined) throw new Error('no NBD_INFO_EXPORT in the reply to NBD_OPT_GO');
  return size;
}
