/**
 * The transmission phase: parses requests from the stream, runs them concurrently, and writes each reply in one
 * piece (header and payload corked together, so replies never interleave). Reading pauses while too many requests or
 * bytes are in flight or while the socket's write buffer is full.
 */
import type { Socket } from 'node:net';
import { COMMAND_NAMES, execute, type Request, type Session } from './commands.js';
import * as c from './constants.js';
import { errnoFor, messageOf } from './errors.js';
import { type SocketReader, StreamClosedError } from './socket-reader.js';
import * as wire from './wire.js';

/** Requests executing at once before the server stops reading more. */
const MAX_IN_FLIGHT = 64;

export type TransmissionEnd = 'disconnect' | 'closed' | 'stopped' | 'protocol-error';

export interface TransmissionContext extends Session {
  socket: Socket;
  reader: SocketReader;
  log: (event: string, fields: Record<string, unknown>) => void;
  /** Told of each READ and WRITE that succeeded (bytes, seconds). Default none. */
  observe?: (op: 'read' | 'write', bytes: number, seconds: number) => void;
}

export class Transmission {
  private inFlight = 0;
  private inFlightBytes = 0;
  private stopped = false;
  private waiters: (() => void)[] = [];
  private readonly maxInFlightBytes: number;

  constructor(private readonly ctx: TransmissionContext) {
    this.maxInFlightBytes = 4 * ctx.maxPayload;
    const notify = () => this.notify();
    ctx.socket.on('drain', notify);
    ctx.socket.on('close', notify);
  }

  /** Stops reading requests (server shutdown); requests already read still complete. */
  stop(): void {
    this.stopped = true;
    this.ctx.reader.stop();
    this.notify();
  }

  /** Serves requests until the client disconnects or the server stops; resolves once no request is in flight. */
  async run(): Promise<TransmissionEnd> {
    try {
      return await this.loop();
    } catch (err: unknown) {
      if (err instanceof StreamClosedError) return this.stopped ? 'stopped' : 'closed';
      throw err;
    } finally {
      await this.until(() => this.inFlight === 0);
    }
  }

  private async loop(): Promise<TransmissionEnd> {
    const { reader, maxPayload } = this.ctx;
    for (;;) {
      await this.until(() => this.stopped || this.ctx.socket.destroyed || this.hasRoom());
      if (this.stopped) return 'stopped';
      const header = await reader.read(c.REQUEST_HEADER_SIZE);
      if (header.readUInt32BE(0) !== c.REQUEST_MAGIC) {
        this.ctx.log('nbd.protocol.error', { reason: 'bad request magic', magic: header.readUInt32BE(0) });
        return 'protocol-error';
      }
      const req: Request = {
        flags: header.readUInt16BE(4),
        type: header.readUInt16BE(6),
        handle: header.subarray(8, 16),
        offset: wire.readUInt64(header, 16),
        length: header.readUInt32BE(24),
        payload: undefined,
      };
      if (req.type === c.CMD_DISC) return 'disconnect';
      if (req.type === c.CMD_WRITE) {
        if (req.length > maxPayload) {
          await reader.skip(req.length);
          this.fail(req, c.EINVAL, `write of ${req.length} bytes exceeds the maximum of ${maxPayload}`);
          continue;
        }
        req.payload = await reader.read(req.length);
      }
      this.start(req);
    }
  }

  private hasRoom(): boolean {
    if (this.ctx.socket.writableNeedDrain) return false;
    return this.inFlight === 0 || (this.inFlight < MAX_IN_FLIGHT && this.inFlightBytes < this.maxInFlightBytes);
  }

  private start(req: Request): void {
    const bytes = req.type === c.CMD_READ || req.type === c.CMD_WRITE ? req.length : 0;
    this.inFlight++;
    this.inFlightBytes += bytes;
    const observe = this.ctx.observe;
    const op = req.type === c.CMD_READ ? 'read' : req.type === c.CMD_WRITE ? 'write' : undefined;
    const started = observe !== undefined && op !== undefined ? performance.now() : undefined;
    execute(req, this.ctx)
      .then(
        (reply) => {
          if (started !== undefined && op !== undefined) observe?.(op, bytes, (performance.now() - started) / 1000);
          this.send(reply);
        },
        (err: unknown) => this.fail(req, errnoFor(err), messageOf(err)),
      )
      .catch((err: unknown) => this.ctx.log('nbd.reply.failed', { error: messageOf(err) }))
      .finally(() => {
        this.inFlight--;
        this.inFlightBytes -= bytes;
        this.notify();
      });
  }

  private fail(req: Request, errno: number, message: string): void {
    this.ctx.log('nbd.request.failed', {
      command: COMMAND_NAMES[req.type] ?? req.type,
      offset: req.offset,
      length: req.length,
      errno,
      error: message,
    });
    const reply = this.ctx.structured
      ? wire.structuredError(req.handle, errno, message)
      : wire.simpleReply(req.handle, errno);
    this.send([reply]);
  }

  private send(buffers: Buffer[]): void {
    const { socket } = this.ctx;
    if (socket.destroyed || !socket.writable) return;
    if (buffers.length === 1) {
      socket.write(buffers[0] as Buffer);
      return;
    }
    socket.cork();
    for (const buffer of buffers) socket.write(buffer);
    socket.uncork();
  }

  private async until(condition: () => boolean): Promise<void> {
    while (!condition()) await new Promise<void>((resolve) => this.waiters.push(resolve));
  }

  private notify(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }
}
