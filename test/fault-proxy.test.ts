/**
 * The fault proxy's own behaviour (test/support/fault-proxy.ts), so tests that rely on it cannot pass because it
 * injected nothing: in tcp mode it resets, stalls and drops connections after a seeded number of bytes, and the same
 * seed gives the same schedule.
 */
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FaultProxy, startFaultProxy, type TcpFault } from './support/fault-proxy.js';

/** A server that sends `size` bytes to each connection and then closes it. */
let server: net.Server;
let port: number;
const size = 200_000;

beforeAll(async () => {
  server = net.createServer((s) => {
    s.on('error', () => undefined);
    s.end(Buffer.alloc(size, 1));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as net.AddressInfo).port;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
});

/** Connects through the proxy: bytes received and how it ended ('silent' when nothing ended it in `giveUpMs`). */
function fetchAll(proxy: FaultProxy, giveUpMs: number): Promise<{ bytes: number; end: string }> {
  return new Promise((resolve) => {
    const socket = net.connect(proxy.port, '127.0.0.1');
    let bytes = 0;
    const finish = (end: string): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ bytes, end });
    };
    const timer = setTimeout(() => finish('silent'), giveUpMs);
    socket.on('data', (d: Buffer) => {
      bytes += d.length;
    });
    socket.on('error', (err: NodeJS.ErrnoException) => finish(err.code ?? 'error'));
    socket.on('end', () => finish('end'));
  });
}

describe('fault proxy, tcp mode', () => {
  it.each<[TcpFault, string]>([
    ['reset', 'ECONNRESET'],
    ['drop', 'silent'],
    ['stall', 'end'],
  ])('%s: the connection breaks as asked, part-way', async (fault, end) => {
    const proxy = await startFaultProxy({
      target: { host: '127.0.0.1', port },
      rate: 1,
      faults: [fault],
      stallMs: 400,
      maxBytesBeforeFault: 100_000,
      seed: 7,
    });
    try {
      const got = await fetchAll(proxy, 1500);
      expect(got.end).toBe(end);
      if (fault === 'stall') {
        // Held back, then all of it: the stall struck (counted below) and the connection went on.
        expect(got.bytes).toBe(size);
      } else {
        expect(got.bytes).toBeLessThan(size);
      }
      expect(proxy.counts[fault]).toBe(1);
      expect(proxy.struck).toEqual([{ kind: fault, n: 0, what: 'connection' }]);
    } finally {
      await proxy.close();
    }
  });

  it('replays: the same seed breaks the same connections; rate 0 lets all through', async () => {
    const run = async (seed: number, rate: number) => {
      const proxy = await startFaultProxy({
        target: { host: '127.0.0.1', port },
        rate,
        faults: ['reset'],
        seed,
      });
      const seen: number[] = [];
      for (let i = 0; i < 12; i++) seen.push((await fetchAll(proxy, 1500)).bytes);
      await proxy.close();
      const struck = proxy.struck.map((f) => f.n);
      // A reset connection got part of the stream (how much of it reached the reader before the RST varies).
      expect(seen.map((bytes, i) => bytes < size === struck.includes(i))).toEqual(seen.map(() => true));
      return { seen, struck };
    };
    const a = await run(42, 0.5);
    const b = await run(42, 0.5);
    expect(b.struck).toEqual(a.struck);
    expect(a.struck.length).toBeGreaterThan(0);
    expect(a.struck.length).toBeLessThan(12);
    const clean = await run(42, 0);
    expect(clean.struck).toEqual([]);
    expect(clean.seen.every((n) => n === size)).toBe(true);
  });
});

describe('fault proxy, tcp link controls', () => {
  /** An echo server: every byte back. */
  let echo: net.Server;
  let echoPort: number;

  beforeAll(async () => {
    echo = net.createServer((s) => {
      s.on('error', () => undefined);
      s.pipe(s);
    });
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
    echoPort = (echo.address() as net.AddressInfo).port;
  });

  afterAll(async () => {
    await new Promise((resolve) => echo.close(resolve));
  });

  /** Sends `data` through the proxy to the echo server; resolves with what came back once it is all there. */
  function roundTrip(proxy: FaultProxy, data: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(proxy.port, '127.0.0.1', () => socket.write(data));
      const got: Buffer[] = [];
      let length = 0;
      socket.on('data', (d: Buffer) => {
        got.push(d);
        length += d.length;
        if (length >= data.length) {
          socket.destroy();
          resolve(Buffer.concat(got));
        }
      });
      socket.on('error', reject);
    });
  }

  it('setDelay holds every chunk both ways, in order, and bytes counts each direction', async () => {
    const proxy = await startFaultProxy({ target: { host: '127.0.0.1', port: echoPort }, rate: 0 });
    try {
      const data = Buffer.from(Array.from({ length: 300_000 }, (_v, i) => i % 251));
      proxy.setDelay(150);
      const started = performance.now();
      const back = await roundTrip(proxy, data);
      // A lower bound only: no byte can come back before it was held once each way.
      expect(performance.now() - started).toBeGreaterThanOrEqual(2 * 150 - 2);
      expect(back.equals(data)).toBe(true);
      expect(proxy.bytes).toEqual({ toServer: data.length, toClient: data.length });
      proxy.setDelay(0);
      expect((await roundTrip(proxy, Buffer.from('again'))).toString()).toBe('again');
      expect(proxy.bytes).toEqual({ toServer: data.length + 5, toClient: data.length + 5 });
    } finally {
      await proxy.close();
    }
  });

  it("the 'delay' fault delays a connection from the schedule and it still carries everything", async () => {
    const proxy = await startFaultProxy({
      target: { host: '127.0.0.1', port: echoPort },
      rate: 1,
      faults: ['delay'],
      delayMs: 100,
      seed: 3,
    });
    try {
      const started = performance.now();
      expect((await roundTrip(proxy, Buffer.from('hello'))).toString()).toBe('hello');
      expect(performance.now() - started).toBeGreaterThanOrEqual(2 * 100 - 2);
      expect(proxy.struck).toEqual([{ kind: 'delay', n: 0, what: 'connection' }]);
    } finally {
      await proxy.close();
    }
  });

  it('setHold stalls the link until released; resetAll resets open connections', async () => {
    const proxy = await startFaultProxy({ target: { host: '127.0.0.1', port: echoPort }, rate: 0 });
    try {
      proxy.setHold(true);
      const back = roundTrip(proxy, Buffer.from('held'));
      await new Promise((r) => setTimeout(r, 300));
      expect(proxy.bytes).toEqual({ toServer: 0, toClient: 0 });
      proxy.setHold(false);
      expect((await back).toString()).toBe('held');

      const socket = net.connect(proxy.port, '127.0.0.1');
      await new Promise((resolve) => socket.once('connect', resolve));
      socket.write('x');
      await new Promise((resolve) => socket.once('data', resolve));
      const ended = new Promise<string>((resolve) => {
        socket.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
        socket.on('end', () => resolve('end'));
      });
      proxy.resetAll();
      expect(await ended).toBe('ECONNRESET');
    } finally {
      await proxy.close();
    }
  });
});
