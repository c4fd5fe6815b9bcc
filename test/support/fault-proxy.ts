/**
 * A fault-injecting proxy for tests: it sits between a client and a server on loopback and, at a given rate, breaks
 * what passes through. Two modes:
 *
 * - `tcp` (default): per connection. A faulty connection is reset, stalled or dropped (no more bytes either way, the
 *   sockets left open) after a number of bytes from the server, or delayed (every chunk, both ways, held `delayMs`).
 *   For any TCP protocol (replication, NBD). A whole link can also be degraded at run time, whatever the schedule:
 *   `setDelay` adds latency to every connection both ways, `setHold` holds every byte back until released (a stalled
 *   link), `resetAll` resets every open connection; `bytes` counts what went each way (a resync's bytes, say).
 *   `strandAll` holds the connections open now, and only those, as a partition would, and keeps what their clients
 *   sent even after the clients closed them; `releaseStranded` then delivers it to the server, as a kernel
 *   retransmits a closed socket's send queue once a partition heals.
 * - `http`: per request (HTTP/1.1, keep-alive). A faulty request is answered 500 InternalError or 503 SlowDown (S3's
 *   XML error body) without reaching the server, reset in the middle of its answer's body (or, for an answer without
 *   a body, after the server applied it and before the client hears of it), or stalled before it is forwarded or in
 *   the middle of its body.
 *
 * Replay: whether the n-th request (or connection) is faulty, where in its body a fault strikes and which stall it
 * gets are drawn from `seed` and n alone; the kinds of faults go round `faults` in turn. A failing trial is replayed
 * from its seed (`proxy.seed`, printed by the test), as far as the client sends its requests in the same order.
 */
import http from 'node:http';
import net from 'node:net';

export type HttpFault = '500' | '503' | 'reset' | 'stall';
export type TcpFault = 'reset' | 'stall' | 'drop' | 'delay';

/** What a proxy injected, by kind (counted when the fault actually struck). */
export interface FaultCounts {
  /** Requests (http) or connections (tcp) seen. */
  seen: number;
  status500: number;
  slowDown503: number;
  /** Resets after part of an answer's body was sent. */
  resetMidBody: number;
  /** Resets of an answer without a body (the server applied the request; the client never heard). */
  resetNoBody: number;
  /** Resets of a tcp connection. */
  reset: number;
  /** Stalls before the answer: before the request is forwarded, or (an answer without a body) after. */
  stallBefore: number;
  stallMidBody: number;
  /** Stalls of a tcp connection. */
  stall: number;
  drop: number;
  /** Delayed tcp connections. */
  delay: number;
}

/** Bytes forwarded by a tcp proxy, by direction. */
export interface ByteCounts {
  /** From clients to the server. */
  toServer: number;
  /** From the server to clients. */
  toClient: number;
}

interface CommonOptions {
  /** Server to forward to. */
  target: { host: string; port: number };
  /** Address to listen on; default 127.0.0.1 (a network lab's bridge address, say, to be reached from its hosts). */
  listenHost?: string;
  /** Seed of the fault schedule; default a random one (read it back from `proxy.seed`). */
  seed?: number;
  /** Fraction of requests (http) or connections (tcp) that get a fault, 0..1; default 0.05. */
  rate?: number;
  /** Milliseconds a stall lasts; default 5000. */
  stallMs?: number;
}

/** A request as `script` sees it. */
export interface ProxiedRequest {
  /** Requests before this one. */
  n: number;
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
}

export interface HttpFaultProxyOptions extends CommonOptions {
  mode: 'http';
  /** Kinds injected, in turn; default all four. */
  faults?: readonly HttpFault[];
  /**
   * Scripted faults, for tests of one case: called for each request before it is forwarded (and awaited, so a test
   * can act between two requests); a fault or 'pass' overrides the random schedule, undefined leaves it.
   */
  script?: (req: ProxiedRequest) => HttpFault | 'pass' | undefined | Promise<HttpFault | 'pass' | undefined>;
}

export interface TcpFaultProxyOptions extends CommonOptions {
  mode?: 'tcp';
  /** Kinds injected, in turn; default reset, stall and drop. */
  faults?: readonly TcpFault[];
  /** A faulty connection breaks after 0..this many bytes from the server; default 256 KiB. */
  maxBytesBeforeFault?: number;
  /** Milliseconds a `delay` connection holds each chunk, both ways; default 200. */
  delayMs?: number;
}

/** One fault that struck. */
export interface StruckFault {
  kind: Exclude<keyof FaultCounts, 'seen'>;
  /** The request's or connection's number (0-based). */
  n: number;
  /** 'METHOD /path?query' or 'connection'. */
  what: string;
}

type Strike = (kind: StruckFault['kind'], n: number, what: string) => void;

export interface FaultProxy {
  /** `http://HOST:PORT` (HOST: `listenHost`). */
  readonly url: string;
  readonly port: number;
  readonly seed: number;
  readonly counts: FaultCounts;
  /** Every fault that struck, in order. */
  readonly struck: readonly StruckFault[];
  /** Bytes forwarded each way (tcp mode), counted as they are written on. */
  readonly bytes: ByteCounts;
  /** Changes the fault rate from now on (0 lets everything through). */
  setRate(rate: number): void;
  /** Tcp mode: adds `ms` of latency to every chunk from now on, both ways, on every connection (0: none). */
  setDelay(ms: number): void;
  /** Tcp mode: holds every byte back, both ways, on every connection (a stalled link) until called with false. */
  setHold(on: boolean): void;
  /** Tcp mode: resets every open connection (new ones still get through). */
  resetAll(): void;
  /**
   * Tcp mode: holds every byte of the connections open now, both ways (new ones get through); what their clients
   * send is kept, even once they closed, until `releaseStranded`.
   */
  strandAll(): void;
  /** Tcp mode: delivers to the server what the stranded connections' clients sent, then ends those connections. */
  releaseStranded(): void;
  /** Stops listening and destroys every connection. */
  close(): Promise<void>;
}

/** mulberry32: a small, fast 32-bit PRNG, enough to draw a fault schedule. Returns numbers in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The draws of the n-th request or connection: the same for the same seed and n. */
function drawsOf(seed: number, n: number): () => number {
  return seededRandom((seed ^ Math.imul(n + 1, 0x9e3779b9)) >>> 0);
}

function emptyCounts(): FaultCounts {
  return {
    seen: 0,
    status500: 0,
    slowDown503: 0,
    resetMidBody: 0,
    resetNoBody: 0,
    reset: 0,
    stallBefore: 0,
    stallMidBody: 0,
    stall: 0,
    drop: 0,
    delay: 0,
  };
}

/** Starts a proxy on a free loopback port. */
export async function startFaultProxy(options: HttpFaultProxyOptions | TcpFaultProxyOptions): Promise<FaultProxy> {
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31);
  const state = { rate: options.rate ?? 0.05, stallMs: options.stallMs ?? 5000, faultsGiven: 0 };
  const counts = emptyCounts();
  const link: LinkState = {
    delayMs: 0,
    hold: false,
    bytes: { toServer: 0, toClient: 0 },
    lines: new Set(),
    resets: new Set(),
    strands: new Set(),
  };
  const struck: StruckFault[] = [];
  const strike: Strike = (kind, n, what) => {
    counts[kind]++;
    struck.push({ kind, n, what });
  };
  const sockets = new Set<net.Socket>();
  const track = (s: net.Socket): void => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  };
  /** For the n-th request or connection: its draws, and its fault kind (undefined: let it through). */
  const decide = <K>(kinds: readonly K[]): { draw: () => number; kind: K | undefined } => {
    const draw = drawsOf(seed, counts.seen++);
    if (draw() >= state.rate || kinds.length === 0) return { draw, kind: undefined };
    return { draw, kind: kinds[(seed + state.faultsGiven++) % kinds.length] };
  };
  let server: net.Server;
  if (options.mode === 'http') {
    server = httpProxy(options, state, counts, strike, decide, track);
  } else {
    const maxBytes = options.maxBytesBeforeFault ?? 256 * 1024;
    const kinds = options.faults ?? (['reset', 'stall', 'drop'] as const);
    const delayMs = options.delayMs ?? 200;
    server = net.createServer((client) => {
      track(client);
      const n = counts.seen;
      const { draw, kind } = decide(kinds);
      const fault = { kind, after: Math.floor(draw() * maxBytes), stallMs: state.stallMs, delayMs };
      tcpPipe(client, options.target, fault, link, (k) => strike(k, n, 'connection'), track);
    });
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, options.listenHost ?? '127.0.0.1', resolve);
  });
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `http://${options.listenHost ?? '127.0.0.1'}:${port}`,
    port,
    seed,
    counts,
    struck,
    bytes: link.bytes,
    setRate: (rate) => {
      state.rate = rate;
    },
    setDelay: (ms) => {
      link.delayMs = ms;
    },
    setHold: (on) => {
      link.hold = on;
      if (!on) for (const line of link.lines) line.pump();
    },
    resetAll: () => {
      for (const reset of link.resets) reset();
    },
    strandAll: () => {
      for (const strand of link.strands) strand.strand();
    },
    releaseStranded: () => {
      for (const strand of link.strands) strand.release();
    },
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A tcp proxy's run-time link state, shared by its connections. */
interface LinkState {
  delayMs: number;
  hold: boolean;
  bytes: ByteCounts;
  /** Every open connection's two lines (pumped again when the hold is released) and its reset. */
  lines: Set<Line>;
  resets: Set<() => void>;
  /** Every open connection's strand and release (stranded ones stay here after their client closed). */
  strands: Set<{ strand(): void; release(): void }>;
}

/**
 * One direction of a proxied connection: chunks (and the end) are written on in order, each held until its time when
 * the link is delayed or held. Held chunks are not back-pressured (the proxy is for tests: bounded by what a client
 * sends without answers).
 */
class Line {
  private readonly queue: { at: number; data: Buffer | 'end'; done?: () => void }[] = [];
  private timer: NodeJS.Timeout | undefined;
  /** Held on its own (a stranded connection), whatever the link's hold. */
  held = false;

  constructor(
    private readonly to: net.Socket,
    private readonly extraMs: number,
    private readonly link: LinkState,
    private readonly count: (n: number) => void,
  ) {}

  /** Writes `data` on (now, or after the delay); false when the socket asks the source to pause. */
  write(data: Buffer, done?: () => void): boolean {
    return this.push(data, done);
  }

  /** Ends the socket after what is queued. */
  end(): void {
    this.push('end');
  }

  private push(data: Buffer | 'end', done?: () => void): boolean {
    const delay = this.extraMs + this.link.delayMs;
    if (this.queue.length === 0 && delay === 0 && !this.link.hold && !this.held) return this.emit(data, done);
    this.queue.push({ at: Date.now() + delay, data, ...(done !== undefined && { done }) });
    this.pump();
    return true;
  }

  /** Writes on every queued chunk whose time has come, and sets a timer for the next. */
  pump(): void {
    if (this.timer !== undefined || this.link.hold || this.held) return;
    for (;;) {
      const head = this.queue[0];
      if (head === undefined) return;
      const wait = head.at - Date.now();
      if (wait > 0) {
        this.timer = setTimeout(() => {
          this.timer = undefined;
          this.pump();
        }, wait);
        this.timer.unref();
        return;
      }
      this.queue.shift();
      this.emit(head.data, head.done);
    }
  }

  private emit(data: Buffer | 'end', done?: () => void): boolean {
    if (this.to.destroyed) return true;
    if (data === 'end') {
      this.to.end();
      return true;
    }
    this.count(data.length);
    return this.to.write(data, done);
  }

  close(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.queue.length = 0;
  }
}

/** Forwards one connection both ways; a faulty one breaks after `after` bytes from the server, or is delayed. */
function tcpPipe(
  client: net.Socket,
  target: { host: string; port: number },
  fault: { kind: TcpFault | undefined; after: number; stallMs: number; delayMs: number },
  link: LinkState,
  strike: (kind: TcpFault) => void,
  track: (s: net.Socket) => void,
): void {
  const { after, stallMs } = fault;
  const kind = fault.kind === 'delay' ? undefined : fault.kind;
  const upstream = net.connect(target.port, target.host);
  track(upstream);
  const extra = fault.kind === 'delay' ? fault.delayMs : 0;
  if (fault.kind === 'delay') strike('delay');
  const up = new Line(upstream, extra, link, (n) => {
    link.bytes.toServer += n;
  });
  const down = new Line(client, extra, link, (n) => {
    link.bytes.toClient += n;
  });
  const reset = (): void => {
    resetSoon(client);
    resetSoon(upstream);
  };
  let stranded = false;
  const strand = {
    strand: () => {
      stranded = true;
      up.held = true;
      down.held = true;
    },
    release: () => {
      if (!stranded) return;
      stranded = false;
      link.strands.delete(strand);
      up.held = false;
      up.pump();
      up.end();
    },
  };
  link.lines.add(up);
  link.lines.add(down);
  link.resets.add(reset);
  link.strands.add(strand);
  client.on('close', () => {
    link.lines.delete(up);
    link.lines.delete(down);
    link.resets.delete(reset);
    down.close();
    // A stranded connection's client bytes wait for their release.
    if (stranded) return;
    link.strands.delete(strand);
    up.close();
  });
  let sent = 0;
  let struck = false;
  let dropped = false;
  let stalled = false;
  let ended = false;
  // Once a fault struck, the server's end or failure no longer reaches the client: the fault decides what it sees.
  client.on('error', () => {
    if (!stranded) upstream.destroy();
  });
  client.on('close', () => {
    if (!stranded) upstream.destroy();
  });
  client.on('end', () => up.end());
  upstream.on('error', () => {
    if (!struck) client.destroy();
  });
  upstream.on('end', () => {
    ended = true;
    if (!struck || (kind === 'stall' && !stalled)) down.end();
  });
  client.on('data', (d: Buffer) => {
    if (!dropped && !up.write(d)) client.pause();
  });
  upstream.on('drain', () => client.resume());
  client.on('drain', () => {
    if (!stalled) upstream.resume();
  });
  upstream.on('data', (d: Buffer) => {
    if (dropped) return;
    if (kind === undefined || struck || sent + d.length <= after) {
      sent += d.length;
      if (!down.write(d)) upstream.pause();
      return;
    }
    struck = true;
    const head = d.subarray(0, after - sent);
    const tail = d.subarray(after - sent);
    sent = after;
    if (kind === 'drop') {
      dropped = true;
      down.write(head, () => strike('drop'));
      return;
    }
    stalled = kind === 'stall';
    // A reset connection forwards nothing more either way.
    if (kind === 'reset') dropped = true;
    upstream.pause();
    down.write(head, () => {
      if (kind === 'reset') {
        strike('reset');
        resetSoon(client);
        upstream.destroy();
        return;
      }
      strike('stall');
      setTimeout(() => {
        stalled = false;
        if (client.destroyed) return;
        down.write(tail);
        if (ended) down.end();
        else upstream.resume();
      }, stallMs).unref();
    });
  });
}

/**
 * Resets a connection (RST). A little later than the write before it: a reset in the very callback of a write was
 * seen to reach the peer as a plain close (FIN) on loopback.
 */
function resetSoon(socket: net.Socket): void {
  setTimeout(() => {
    if (!socket.destroyed) socket.resetAndDestroy();
  }, 5).unref();
}

const S3_ERRORS: Record<'500' | '503', { status: number; code: string; message: string }> = {
  '500': { status: 500, code: 'InternalError', message: 'We encountered an internal error. Please try again.' },
  '503': { status: 503, code: 'SlowDown', message: 'Please reduce your request rate.' },
};

function httpProxy(
  options: HttpFaultProxyOptions,
  state: { stallMs: number },
  counts: FaultCounts,
  strike: Strike,
  decide: (kinds: readonly HttpFault[]) => { draw: () => number; kind: HttpFault | undefined },
  track: (s: net.Socket) => void,
): net.Server {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  const kinds = options.faults ?? (['500', '503', 'reset', 'stall'] as const);
  const server = http.createServer(async (req, res) => {
    const n = counts.seen;
    const random = decide(kinds);
    const draw = random.draw;
    let kind = random.kind;
    if (options.script !== undefined) {
      req.pause();
      const scripted = await Promise.resolve()
        .then(() => options.script?.({ n, method: req.method ?? '', url: req.url ?? '', headers: req.headers }))
        .catch((err: unknown) => {
          // A script that fails breaks the request (and says why), rather than the test process.
          console.error(`fault proxy script failed on request ${n}:`, err);
          req.socket.destroy();
          return 'abandon' as const;
        });
      if (scripted === 'abandon') return;
      if (scripted !== undefined) kind = scripted === 'pass' ? undefined : scripted;
    }
    if (kind === '500' || kind === '503') {
      const e = S3_ERRORS[kind];
      strike(kind === '500' ? 'status500' : 'slowDown503', n, `${req.method} ${req.url}`);
      req.resume();
      req.on('end', () => {
        const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${e.code}</Code><Message>${e.message}</Message><Resource>${req.url ?? ''}</Resource><RequestId>fault-proxy</RequestId></Error>`;
        res.writeHead(e.status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
      return;
    }
    const stallMidBody = kind === 'stall' && draw() < 0.5;
    const cutAt = draw();
    const forward = (): void => {
      if (req.socket.destroyed) return;
      const headers = { ...req.headers };
      delete headers.expect;
      const up = http.request({
        host: options.target.host,
        port: options.target.port,
        method: req.method,
        path: req.url,
        headers,
        agent,
      });
      up.on('error', () => req.socket.destroy());
      res.on('close', () => up.destroy());
      up.on('response', (answer) => {
        const length = Number(answer.headers['content-length'] ?? Number.NaN);
        const hasBody = req.method !== 'HEAD' && !(length === 0);
        if (kind === 'reset' && !hasBody) {
          answer.resume();
          strike('resetNoBody', n, `${req.method} ${req.url}`);
          resetSoon(req.socket);
          return;
        }
        if (stallMidBody && !hasBody) {
          // No body to stall in: the answer itself is held back (the server has applied the request).
          strike('stallBefore', n, `${req.method} ${req.url}`);
          setTimeout(() => {
            if (req.socket.destroyed) return;
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            answer.pipe(res);
          }, state.stallMs).unref();
          return;
        }
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        if (kind !== 'reset' && !stallMidBody) {
          answer.pipe(res);
          return;
        }
        // Send about `cutAt` of the body (at least one byte when there is one), then break.
        const cut = Number.isFinite(length) && length > 1 ? Math.max(1, Math.floor(length * cutAt)) : 1;
        let sent = 0;
        let struck = false;
        let stalled = false;
        let ended = false;
        answer.on('data', (d: Buffer) => {
          if (struck || sent + d.length < cut) {
            sent += d.length;
            if (!res.write(d)) answer.pause();
            return;
          }
          struck = true;
          stalled = true;
          const head = d.subarray(0, cut - sent);
          const tail = d.subarray(cut - sent);
          sent += d.length;
          answer.pause();
          res.write(head, () => {
            if (kind === 'reset') {
              strike('resetMidBody', n, `${req.method} ${req.url}`);
              answer.destroy();
              resetSoon(req.socket);
              return;
            }
            strike('stallMidBody', n, `${req.method} ${req.url}`);
            setTimeout(() => {
              stalled = false;
              if (req.socket.destroyed) return;
              if (tail.length > 0) res.write(tail);
              if (ended) res.end();
              else answer.resume();
            }, state.stallMs).unref();
          });
        });
        res.on('drain', () => {
          if (!stalled) answer.resume();
        });
        answer.on('end', () => {
          ended = true;
          if (!stalled) res.end();
        });
      });
      req.pipe(up);
    };
    if (kind === 'stall' && !stallMidBody) {
      strike('stallBefore', n, `${req.method} ${req.url}`);
      setTimeout(forward, state.stallMs).unref();
    } else {
      forward();
    }
  });
  server.keepAliveTimeout = 30_000;
  server.on('connection', track);
  server.on('close', () => agent.destroy());
  return server;
}
