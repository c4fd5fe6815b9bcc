/**
 * A byte-level NBD client for protocol tests: it sends exactly what a test asks for (including malformed input) and
 * decodes what comes back, without any of the checks a real client would make.
 */
import { connect, type Socket } from 'node:net';
import { NbdProtocol as c, SocketReader, StreamClosedError } from '../../node/index.js';

export interface OptionReply {
  option: number;
  type: number;
  data: Buffer;
}

export interface Chunk {
  magic: number;
  flags: number;
  type: number;
  handle: bigint;
  /** Simple replies: the error field. */
  error: number;
  payload: Buffer;
}

export class RawClient {
  readonly reader: SocketReader;
  private readonly closed: Promise<void>;

  private constructor(readonly socket: Socket) {
    this.reader = new SocketReader(socket, 256 * 1024 * 1024);
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => {});
  }

  static connect(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true }, () => resolve(new RawClient(socket)));
      socket.once('error', reject);
    });
  }

  /** Reads the greeting and answers with `clientFlags`; returns the server's handshake flags. */
  async greet(
    clientFlags = c.FLAG_C_FIXED_NEWSTYLE | c.FLAG_C_NO_ZEROES,
  ): Promise<{ magic: bigint; opt: bigint; flags: number }> {
    const greeting = await this.reader.read(18);
    this.send(u32(clientFlags));
    return { magic: greeting.readBigUInt64BE(0), opt: greeting.readBigUInt64BE(8), flags: greeting.readUInt16BE(16) };
  }

  send(...buffers: Buffer[]): void {
    this.socket.write(Buffer.concat(buffers));
  }

  sendOption(option: number, data: Buffer = Buffer.alloc(0), magic = c.IHAVEOPT): void {
    const header = Buffer.alloc(16);
    header.writeBigUInt64BE(magic, 0);
    header.writeUInt32BE(option, 8);
    header.writeUInt32BE(data.length, 12);
    this.send(header, data);
  }

  async optionReply(): Promise<OptionReply> {
    const header = await this.reader.read(20);
    if (header.readBigUInt64BE(0) !== c.OPTION_REPLY_MAGIC) throw new Error('bad option reply magic');
    const data = await this.reader.read(header.readUInt32BE(16));
    return { option: header.readUInt32BE(8), type: header.readUInt32BE(12), data: Buffer.from(data) };
  }

  /** Replies up to and including the first that is not NBD_REP_SERVER/INFO/META_CONTEXT. */
  async optionReplies(): Promise<OptionReply[]> {
    const replies: OptionReply[] = [];
    for (;;) {
      const reply = await this.optionReply();
      replies.push(reply);
      if (![c.REP_SERVER, c.REP_INFO, c.REP_META_CONTEXT].includes(reply.type)) return replies;
    }
  }

  /** Negotiates and enters transmission on `name`; resolves with size and transmission flags. */
  async go(
    name: string,
    options: { structured?: boolean; meta?: boolean } = {},
  ): Promise<{ size: number; flags: number }> {
    await this.greet();
    if (options.structured || options.meta) {
      this.sendOption(c.OPT_STRUCTURED_REPLY);
      expectType(await this.optionReply(), c.REP_ACK);
    }
    if (options.meta) {
      this.sendOption(c.OPT_SET_META_CONTEXT, metaContextData(name, [c.BASE_ALLOCATION]));
      expectType((await this.optionReplies()).at(-1), c.REP_ACK);
    }
    this.sendOption(c.OPT_GO, infoData(name, []));
    const replies = await this.optionReplies();
    const last = replies.at(-1);
    if (last?.type !== c.REP_ACK) {
      throw new Error(`GO failed: 0x${last?.type.toString(16)} ${last?.data.toString() ?? ''}`);
    }
    const info = replies.find((r) => r.type === c.REP_INFO && r.data.readUInt16BE(0) === c.INFO_EXPORT);
    if (!info) throw new Error('no NBD_INFO_EXPORT');
    return { size: Number(info.data.readBigUInt64BE(2)), flags: info.data.readUInt16BE(10) };
  }

  request(type: number, handle: bigint, offset: number, length: number, flags = 0, payload?: Buffer): void {
    this.send(requestBytes(type, handle, offset, length, flags), payload ?? Buffer.alloc(0));
  }

  /** A simple reply; `readLength` bytes of payload are read when the error is 0. */
  async simpleReply(readLength = 0): Promise<Chunk> {
    const header = await this.reader.read(16);
    const magic = header.readUInt32BE(0);
    if (magic !== c.SIMPLE_REPLY_MAGIC) throw new Error(`expected a simple reply, got magic 0x${magic.toString(16)}`);
    const error = header.readUInt32BE(4);
    const payload = error === 0 && readLength > 0 ? Buffer.from(await this.reader.read(readLength)) : Buffer.alloc(0);
    return { magic, flags: 0, type: 0, handle: header.readBigUInt64BE(8), error, payload };
  }

  /** A simple reply or a structured chunk, whichever comes (simple replies carry no payload here). */
  async reply(): Promise<Chunk> {
    const first = await this.reader.read(4);
    const magic = first.readUInt32BE(0);
    if (magic === c.SIMPLE_REPLY_MAGIC) {
      const rest = await this.reader.read(12);
      return {
        magic,
        flags: 0,
        type: 0,
        handle: rest.readBigUInt64BE(4),
        error: rest.readUInt32BE(0),
        payload: Buffer.alloc(0),
      };
    }
    if (magic !== c.STRUCTURED_REPLY_MAGIC) throw new Error(`bad reply magic 0x${magic.toString(16)}`);
    const rest = await this.reader.read(16);
    const payload = Buffer.from(await this.reader.read(rest.readUInt32BE(12)));
    const type = rest.readUInt16BE(2);
    const error = type & 0x8000 ? payload.readUInt32BE(0) : 0;
    return { magic, flags: rest.readUInt16BE(0), type, handle: rest.readBigUInt64BE(4), error, payload };
  }

  /** Resolves when the server closed the connection (reads until EOF). */
  async closedByServer(): Promise<boolean> {
    try {
      for (;;) await this.reader.read(1);
    } catch (err: unknown) {
      if (!(err instanceof StreamClosedError)) throw err;
    }
    this.socket.end();
    await this.closed;
    return true;
  }

  close(): Promise<void> {
    this.socket.destroy();
    return this.closed;
  }
}

export function u32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(value, 0);
  return b;
}

export function requestBytes(
  type: number,
  handle: bigint,
  offset: number,
  length: number,
  flags = 0,
  magic = c.REQUEST_MAGIC,
) {
  const b = Buffer.alloc(28);
  b.writeUInt32BE(magic, 0);
  b.writeUInt16BE(flags, 4);
  b.writeUInt16BE(type, 6);
  b.writeBigUInt64BE(handle, 8);
  b.writeBigUInt64BE(BigInt(offset), 16);
  b.writeUInt32BE(length, 24);
  return b;
}

/** NBD_OPT_INFO / NBD_OPT_GO data. */
export function infoData(name: string, requests: number[]): Buffer {
  const n = Buffer.from(name);
  const b = Buffer.alloc(4 + n.length + 2 + 2 * requests.length);
  b.writeUInt32BE(n.length, 0);
  n.copy(b, 4);
  b.writeUInt16BE(requests.length, 4 + n.length);
  for (const [i, r] of requests.entries()) b.writeUInt16BE(r, 6 + n.length + 2 * i);
  return b;
}

/** NBD_OPT_LIST_META_CONTEXT / NBD_OPT_SET_META_CONTEXT data. */
export function metaContextData(name: string, queries: string[]): Buffer {
  const parts = [u32(Buffer.byteLength(name)), Buffer.from(name), u32(queries.length)];
  for (const q of queries) parts.push(u32(Buffer.byteLength(q)), Buffer.from(q));
  return Buffer.concat(parts);
}

function expectType(reply: OptionReply | undefined, type: number): void {
  if (reply?.type !== type)
    throw new Error(`expected option reply ${type}, got ${reply?.type} ${reply?.data.toString()}`);
}
