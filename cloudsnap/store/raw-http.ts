/**
 * A minimal HTTP/1.1 client for bodies of known length over plain TCP, for the direct GETs of s3-direct-get.ts on
 * `http:` endpoints. A connection reads (net's `onread`) into one reused buffer until a response's head is parsed,
 * then straight into the caller's buffer: the kernel copies the body once, into its place.
 *
 * Why not node:http: every socket read there allocates a new 64 KiB buffer. Those count as external memory, and V8
 * answers each 64 MiB of it with a full collection of the main thread's heap: a 450 MiB restore ran 14 of them
 * (about 200 ms of a 2 s restore). Here a body lands where the caller wants it, with no buffer in between.
 *
 * It handles what such a GET needs and nothing more: a status line, headers, and a Content-Length body. Anything
 * else (chunked encoding, an early close, a timeout, an over-long answer) ends the exchange with undefined and the
 * connection is dropped; the caller then takes its slow path.
 */
import net from 'node:net';

/** Largest response head accepted. */
const MAX_HEAD = 32 * 1024;
const READ_BUFFER = 64 * 1024;
const CRLFCRLF = Buffer.from('\r\n\r\n');
/** Idle keep-alive connections kept per pool. */
const MAX_IDLE = 16;

export interface RawResponse {
  status: number;
  /** Header names in lower case. */
  headers: Map<string, string>;
  body: Buffer;
}

interface Exchange {
  /** The body's destination once the head is known: given the status, headers and length, or undefined to stop. */
  sink: (status: number, headers: Map<string, string>, length: number) => Buffer | undefined;
  /** Called once: with the response, or undefined and the status and body bytes placed before the exchange broke. */
  done: (response: RawResponse | undefined, placed: number, status: number) => void;
  head: Buffer[];
  headBytes: number;
  status: number;
  headers: Map<string, string>;
  body: Buffer | undefined;
  at: number;
  /** Bytes received for this exchange (a reused connection that fails before any may be retried). */
  received: number;
}

class Connection {
  readonly socket: net.Socket;
  private exchange: Exchange | undefined;
  private readonly buffer = Buffer.allocUnsafe(READ_BUFFER);
  private lastReceived = 0;
  closed = false;

  constructor(host: string, port: number, timeoutMs: number) {
    this.socket = net.connect({
      host,
      port,
      noDelay: true,
      onread: { buffer: () => this.readTarget(), callback: (n: number, buf: Uint8Array) => this.onRead(n, buf) },
    });
    this.socket.setTimeout(timeoutMs, () => this.socket.destroy());
    this.socket.on('error', () => undefined);
    this.socket.on('close', () => {
      this.closed = true;
      this.finish(undefined);
    });
    this.socket.on('end', () => this.socket.destroy());
  }

  get busy(): boolean {
    return this.exchange !== undefined;
  }

  send(
    request: string,
    exchange: Omit<Exchange, 'head' | 'headBytes' | 'status' | 'headers' | 'body' | 'at' | 'received'>,
  ) {
    this.exchange = {
      ...exchange,
      head: [],
      headBytes: 0,
      status: 0,
      headers: new Map(),
      body: undefined,
      at: 0,
      received: 0,
    };
    this.socket.write(request);
  }

  /** Bytes received for the current exchange, or for the last one once it ended. */
  get received(): number {
    return this.exchange?.received ?? this.lastReceived;
  }

  /**
   * Where the socket reads next: once a body's place is known, straight into the rest of it (no copy, and reads as
   * large as the kernel has data for); until then, the connection's own buffer.
   */
  private readTarget(): Uint8Array {
    const ex = this.exchange;
    if (ex?.body !== undefined && ex.at < ex.body.length) return ex.body.subarray(ex.at);
    return this.buffer;
  }

  private onRead(n: number, buf: Uint8Array): boolean {
    const ex = this.exchange;
    if (ex === undefined) {
      // Bytes nobody asked for: the connection is out of step.
      this.socket.destroy();
      return false;
    }
    ex.received += n;
    if (ex.body !== undefined && buf.buffer === ex.body.buffer && buf.byteOffset === ex.body.byteOffset + ex.at) {
      // Read in place (readTarget gave no more room than the body has left).
      ex.at += n;
      if (ex.at === ex.body.length) this.complete(ex);
      return true;
    }
    let data = Buffer.from(buf.buffer, buf.byteOffset, n);
    if (ex.body === undefined) {
      const headSoFar = ex.headBytes;
      ex.head.push(Buffer.from(data));
      ex.headBytes += n;
      const head = Buffer.concat(ex.head, ex.headBytes);
      const end = head.indexOf(CRLFCRLF, Math.max(0, headSoFar - 3));
      if (end < 0) {
        if (ex.headBytes > MAX_HEAD) this.socket.destroy();
        return true;
      }
      if (!this.parseHead(ex, head.subarray(0, end))) {
        this.socket.destroy();
        return false;
      }
      data = head.subarray(end + 4);
    }
    const body = ex.body as Buffer;
    if (ex.at + data.length > body.length) {
      this.socket.destroy();
      return false;
    }
    data.copy(body, ex.at);
    ex.at += data.length;
    if (ex.at === body.length) this.complete(ex);
    return true;
  }

  private complete(ex: Exchange): void {
    const keep = ex.headers.get('connection')?.toLowerCase() !== 'close';
    this.finish({ status: ex.status, headers: ex.headers, body: ex.body as Buffer });
    if (!keep) this.socket.destroy();
  }

  private parseHead(ex: Exchange, head: Buffer): boolean {
    const lines = head.toString('latin1').split('\r\n');
    const status = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
    if (status === null) return false;
    ex.status = Number(status[1]);
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      if (colon > 0) ex.headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
    }
    if (ex.headers.has('transfer-encoding')) return false;
    const length = Number(ex.headers.get('content-length'));
    if (!Number.isSafeInteger(length) || length < 0) return false;
    const sink = ex.sink(ex.status, ex.headers, length);
    if (sink === undefined) return false;
    ex.body = sink;
    return true;
  }

  private finish(response: RawResponse | undefined): void {
    const ex = this.exchange;
    this.exchange = undefined;
    // Kept: a failed exchange on a reused connection is repeated only when nothing at all came back.
    this.lastReceived = ex?.received ?? 0;
    ex?.done(response, ex.body === undefined ? 0 : ex.at, ex.status);
  }
}

/** What an exchange that did not complete got as far as (see RawHttpPool.exchange). */
export interface RawProgress {
  /** Status of the answer's head, 0 when none was parsed. */
  status: number;
  /** Body bytes placed in the sink's buffer before the exchange broke. */
  placed: number;
}

/** Keep-alive connections to one host and port. */
export class RawHttpPool {
  private readonly idle: Connection[] = [];

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly timeoutMs: number,
  ) {}

  /**
   * Sends `request` (a whole request head, no body) and reads the answer whose body `sink` places, or undefined when
   * the exchange did not complete (then `progress`, when given, says how far it got). A reused connection that the
   * server closed meanwhile is replaced once. `timeoutMs` of the pool is an idle timeout: a connection silent for it
   * is dropped, the exchange with it.
   */
  async exchange(
    request: string,
    sink: Exchange['sink'],
    signal: AbortSignal | undefined,
    progress?: RawProgress,
  ): Promise<RawResponse | undefined> {
    for (let attempt = 0; attempt < 2; attempt++) {
      const reused = this.take();
      const conn = reused ?? new Connection(this.host, this.port, this.timeoutMs);
      const response = await this.once(conn, request, sink, signal, progress);
      if (response !== undefined) {
        if (!conn.closed) this.put(conn);
        return response;
      }
      conn.socket.destroy();
      // Only a reused connection that failed before any answer (closed while idle) is worth a fresh try.
      if (reused === undefined || conn.received > 0 || signal?.aborted) return undefined;
    }
    return undefined;
  }

  private once(
    conn: Connection,
    request: string,
    sink: Exchange['sink'],
    signal: AbortSignal | undefined,
    progress: RawProgress | undefined,
  ): Promise<RawResponse | undefined> {
    if (signal?.aborted || conn.closed) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const onAbort = (): void => {
        conn.socket.destroy();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      conn.send(request, {
        sink,
        done: (response, placed, status) => {
          signal?.removeEventListener('abort', onAbort);
          if (progress !== undefined) {
            progress.placed = placed;
            progress.status = status;
          }
          resolve(response);
        },
      });
    });
  }

  private take(): Connection | undefined {
    for (let c = this.idle.pop(); c !== undefined; c = this.idle.pop()) {
      if (!c.closed && !c.busy) {
        c.socket.ref();
        return c;
      }
    }
    return undefined;
  }

  private put(conn: Connection): void {
    if (this.idle.length >= MAX_IDLE) {
      conn.socket.destroy();
      return;
    }
    // An idle connection does not keep the process alive.
    conn.socket.unref();
    this.idle.push(conn);
  }
}
