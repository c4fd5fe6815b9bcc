/**
 * A real NBD client for the failover bench: libnbd's Python binding (Debian python3-libnbd, run by Debian's
 * /usr/bin/python3), driven from here. Two modes:
 *
 * - `loop`: writes 4 KiB of random data at random 4 KiB-aligned offsets in the first `spanBytes` of the export, one
 *   request at a time, with a FLUSH after every `flushEvery` writes (1: after each). It prints an event per
 *   acknowledged operation; when a request or the connection fails, it connects to the next URI in turn (round
 *   robin, every 100 ms) and goes on. It runs until stopped.
 * - `script`: connects to the first URI and obeys lines on stdin: `write COUNT BYTES SEED` writes COUNT random blocks
 *   of BYTES at distinct BYTES-aligned offsets drawn from SEED, then FLUSHes, and prints `done`; `quit` disconnects.
 *   The connection stays open between commands, which keeps the volume attached there.
 *
 * Events are JSON lines: `t` is CLOCK_MONOTONIC in nanoseconds (the clock of `process.hrtime`), `lat` the operation's
 * latency in nanoseconds.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

const PYTHON = String.raw`
import json, os, random, sys, time
import nbd

def now():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)

def emit(**event):
    event['t'] = now()
    sys.stdout.write(json.dumps(event) + '\n')
    sys.stdout.flush()

def connect(uri):
    h = nbd.NBD()
    h.connect_uri(uri)
    return h

def loop(cfg):
    uris, span, every = cfg['uris'], cfg['spanBytes'], cfg['flushEvery']
    i, h, n = 0, None, 0
    blocks = span // 4096
    while True:
        if h is None:
            try:
                h = connect(uris[i])
                emit(ev='connected', node=i)
            except nbd.Error as e:
                emit(ev='connect-error', node=i, msg=str(e))
                h = None
                i = (i + 1) % len(uris)
                time.sleep(0.1)
                continue
        buf = os.urandom(4096)
        off = random.randrange(blocks) * 4096
        start = now()
        try:
            h.pwrite(buf, off)
            n += 1
            op = 'write'
            if every > 0 and n % every == 0:
                h.flush()
                op = 'write+flush'
            emit(ev='ack', node=i, op=op, lat=now() - start)
        except nbd.Error as e:
            emit(ev='error', node=i, msg=str(e), lat=now() - start)
            try:
                h.shutdown()
            except nbd.Error:
                pass
            h = None
            i = (i + 1) % len(uris)

def script(cfg):
    h = connect(cfg['uris'][0])
    size = h.get_size()
    emit(ev='connected', node=0, size=size)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == 'quit':
            break
        count, length, seed = int(words[1]), int(words[2]), int(words[3])
        rng = random.Random(seed)
        offsets = rng.sample(range(size // length), count)
        start = now()
        try:
            for k in offsets:
                h.pwrite(os.urandom(length), k * length)
            h.flush()
            emit(ev='done', bytes=count * length, lat=now() - start)
        except nbd.Error as e:
            emit(ev='error', msg=str(e), lat=now() - start)
    h.shutdown()

cfg = json.loads(sys.argv[1])
(loop if cfg['mode'] == 'loop' else script)(cfg)
`;

/** One event the client printed. */
export interface ClientEvent {
  ev: 'connected' | 'connect-error' | 'ack' | 'error' | 'done';
  /** CLOCK_MONOTONIC, nanoseconds. */
  t: number;
  /** Index of the URI in use. */
  node?: number;
  op?: string;
  /** Latency of the operation, nanoseconds. */
  lat?: number;
  msg?: string;
  bytes?: number;
  size?: number;
}

/** A running client. */
export interface NbdClient {
  /** Every event so far, in order. */
  readonly events: ClientEvent[];
  /** Resolves with the first event from now on (or already seen at index >= `from`) that `match` accepts. */
  waitFor(match: (e: ClientEvent) => boolean, timeoutMs: number, from?: number): Promise<ClientEvent>;
  /** Sends a line to the script mode's stdin. */
  send(line: string): void;
  /** Ends the client (SIGKILL) and waits for it. */
  stop(): Promise<void>;
  /** What it printed on stderr. */
  stderr(): string;
}

/** Options of the client. */
export interface ClientOptions {
  mode: 'loop' | 'script';
  /** `nbd://host:port/export` of each node to try, in turn. */
  uris: string[];
  /** loop: the region written; default 64 MiB. */
  spanBytes?: number;
  /** loop: a FLUSH after every this many writes (0: never); default 1. */
  flushEvery?: number;
}

/** CLOCK_MONOTONIC now, in nanoseconds (the clock the client's `t` uses). */
export function monoNs(): number {
  return Number(process.hrtime.bigint());
}

/** Starts the client. */
export function startClient(options: ClientOptions): NbdClient {
  const cfg = {
    mode: options.mode,
    uris: options.uris,
    spanBytes: options.spanBytes ?? 64 * 1024 * 1024,
    flushEvery: options.flushEvery ?? 1,
  };
  const child: ChildProcess = spawn('/usr/bin/python3', ['-c', PYTHON, JSON.stringify(cfg)], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, PATH: `/usr/bin:${process.env.PATH ?? ''}` },
  });
  const events: ClientEvent[] = [];
  const waiters = new Set<() => void>();
  let stderr = '';
  let ended = false;
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  child.stdin?.on('error', () => undefined);
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      ended = true;
      for (const w of waiters) w();
      resolve();
    }),
  );
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on('line', (line) => {
    events.push(JSON.parse(line) as ClientEvent);
    for (const w of waiters) w();
  });
  const waitFor = (match: (e: ClientEvent) => boolean, timeoutMs: number, from = 0): Promise<ClientEvent> =>
    new Promise((resolve, reject) => {
      let seen = from;
      const check = (): void => {
        for (; seen < events.length; seen++) {
          const e = events[seen] as ClientEvent;
          if (match(e)) {
            finish(() => resolve(e));
            return;
          }
        }
        if (ended) finish(() => reject(new Error(`the NBD client exited: ${stderr.trim().slice(-500)}`)));
      };
      const timer = setTimeout(
        () => finish(() => reject(new Error(`no such client event in ${timeoutMs} ms`))),
        timeoutMs,
      );
      const finish = (then: () => void): void => {
        clearTimeout(timer);
        waiters.delete(check);
        then();
      };
      waiters.add(check);
      check();
    });
  return {
    events,
    waitFor,
    send: (line) => {
      child.stdin?.write(`${line}\n`);
    },
    stop: async () => {
      if (!ended) child.kill('SIGKILL');
      await exited;
    },
    stderr: () => stderr,
  };
}
