import type { Socket } from 'node:net';

/** Raised by {@link SocketReader.read} when the peer closed the stream (or the reader was stopped) first. */
export class StreamClosedError extends Error {
  constructor(message = 'connection closed') {
    super(message);
    this.name = 'StreamClosedError';
  }
}

/**
 * Reads exact byte counts from a socket. Incoming chunks are queued without copying; a read that lies inside one
 * chunk returns a view of it, and only a read that spans chunks is copied (once). The socket is paused while more
 * than `highWater` bytes wait unread, so a client cannot make the server buffer without bound.
 */
export class SocketReader {
  private readonly chunks: Buffer[] = [];
  /** Bytes already consumed from chunks[0]. */
  private head = 0;
  private buffered = 0;
  private waiter: { bytes: number; resolve: () => void; reject: (err: Error) => void } | undefined;
  private closed: Error | undefined;
  private readonly onEnd = (): void => this.stop(new StreamClosedError('client closed the connection'));
  private readonly onClose = (): void => this.stop(new StreamClosedError('connection closed'));
  private readonly onChunk = (chunk: Buffer): void => this.onData(chunk);

  constructor(
    private readonly socket: Socket,
    private readonly highWater: number,
  ) {
    socket.on('data', this.onChunk);
    socket.on('end', this.onEnd);
    socket.on('close', this.onClose);
  }

  /**
   * Stops reading the socket and hands it back paused, for another reader (a TLS layer) to take over. Returns the
   * number of bytes that had arrived unread (which that reader would miss). Later reads fail.
   */
  detach(): number {
    this.socket.off('data', this.onChunk);
    this.socket.off('end', this.onEnd);
    this.socket.off('close', this.onClose);
    this.socket.pause();
    this.stop(new StreamClosedError('the connection moved to TLS'));
    return this.buffered;
  }

  /** Bytes received and not read yet. */
  get available(): number {
    return this.buffered;
  }

  /** Resolves with exactly `bytes` bytes; rejects with StreamClosedError if the stream ends first. */
  async read(bytes: number): Promise<Buffer> {
    if (this.buffered < bytes) await this.waitFor(bytes);
    return this.take(bytes);
  }

  /** Reads and drops `bytes` bytes, never holding more than what arrived. */
  async skip(bytes: number): Promise<void> {
    let left = bytes;
    while (left > 0) {
      if (this.buffered === 0) await this.waitFor(1);
      const n = Math.min(left, this.buffered);
      this.drop(n);
      left -= n;
    }
  }

  /** Makes pending and future reads fail (the server is closing the connection). */
  stop(reason: Error = new StreamClosedError('connection stopped')): void {
    if (this.closed) return;
    this.closed = reason;
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.reject(reason);
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    if (this.buffered > this.highWater) this.socket.pause();
    const waiter = this.waiter;
    if (waiter && this.buffered >= waiter.bytes) {
      this.waiter = undefined;
      waiter.resolve();
    }
  }

  private waitFor(bytes: number): Promise<void> {
    if (this.closed) return Promise.reject(this.closed);
    if (this.waiter) return Promise.reject(new Error('SocketReader: concurrent reads'));
    // Never leave the socket paused while waiting for bytes that can only come from it.
    this.socket.resume();
    return new Promise((resolve, reject) => {
      this.waiter = { bytes, resolve, reject };
    });
  }

  private take(bytes: number): Buffer {
    const first = this.chunks[0];
    if (bytes === 0 || first === undefined) return Buffer.alloc(0);
    let out: Buffer;
    if (first.length - this.head >= bytes) {
      out = first.subarray(this.head, this.head + bytes);
      this.drop(bytes);
    } else {
      out = Buffer.allocUnsafe(bytes);
      let filled = 0;
      while (filled < bytes) {
        const chunk = this.chunks[0] as Buffer;
        const n = Math.min(bytes - filled, chunk.length - this.head);
        chunk.copy(out, filled, this.head, this.head + n);
        filled += n;
        this.drop(n);
      }
    }
    return out;
  }

  private drop(bytes: number): void {
    let left = bytes;
    while (left > 0) {
      const chunk = this.chunks[0] as Buffer;
      const n = Math.min(left, chunk.length - this.head);
      this.head += n;
      left -= n;
      if (this.head === chunk.length) {
        this.chunks.shift();
        this.head = 0;
      }
    }
    this.buffered -= bytes;
    if (this.buffered <= this.highWater && this.socket.isPaused() && !this.closed) this.socket.resume();
  }
}
