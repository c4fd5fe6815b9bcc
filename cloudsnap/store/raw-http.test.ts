import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { RawHttpPool } from './raw-http.js';

/** A loopback server that answers each request head with `answer(n)` (n counts requests over all connections). */
async function serve(
  answer: (n: number, socket: net.Socket) => void,
): Promise<{ port: number; connections: () => number; close: () => Promise<void> }> {
  let requests = 0;
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    let pending = '';
    socket.on('data', (d) => {
      pending += d.toString('latin1');
      while (pending.includes('\r\n\r\n')) {
        pending = pending.slice(pending.indexOf('\r\n\r\n') + 4);
        answer(requests++, socket);
      }
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    connections: () => connections,
    close: () =>
      new Promise((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

const sink = (status: number, _h: Map<string, string>, length: number): Buffer | undefined =>
  status === 200 ? Buffer.alloc(length) : undefined;

let stop: (() => Promise<void>) | undefined;
afterEach(async () => {
  await stop?.();
  stop = undefined;
});

describe('RawHttpPool', () => {
  it('reads bodies of known length, in pieces, over one kept-alive connection', async () => {
    const body = Buffer.alloc(300_000, 7);
    const server = await serve((_n, s) => {
      s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nX-Thing: a:b\r\n\r\n`);
      s.write(body.subarray(0, 1000));
      setTimeout(() => s.write(body.subarray(1000)), 5);
    });
    stop = server.close;
    const pool = new RawHttpPool('127.0.0.1', server.port, 5000);
    for (let i = 0; i < 3; i++) {
      const res = await pool.exchange('GET / HTTP/1.1\r\nhost: x\r\n\r\n', sink, undefined);
      expect(res?.status).toBe(200);
      expect(res?.headers.get('x-thing')).toBe('a:b');
      expect(res?.body.equals(body)).toBe(true);
    }
    expect(server.connections()).toBe(1);
  });

  it("reads a body straight into the caller's buffer, piece by piece, touching nothing around it", async () => {
    const body = Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 7) % 251));
    const server = await serve((_n, s) => {
      s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n`);
      let at = 0;
      const next = (): void => {
        s.write(body.subarray(at, at + 30_000));
        at += 30_000;
        if (at < body.length) setTimeout(next, 2);
      };
      next();
    });
    stop = server.close;
    const shared = Buffer.from(new SharedArrayBuffer(body.length + 200)).fill(0xee);
    const place = shared.subarray(100, 100 + body.length);
    const pool = new RawHttpPool('127.0.0.1', server.port, 5000);
    const res = await pool.exchange('GET / HTTP/1.1\r\n\r\n', () => place, undefined);
    expect(res?.body).toBe(place);
    expect(place.equals(body)).toBe(true);
    expect(shared.subarray(0, 100).every((b) => b === 0xee)).toBe(true);
    expect(shared.subarray(100 + body.length).every((b) => b === 0xee)).toBe(true);
  });

  it('gives up (undefined) on an error status, chunked encoding, a short body and an over-long one', async () => {
    const answers = [
      'HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nnah',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n',
      'HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc',
      'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nabcdef',
      'garbage\r\n\r\n',
    ];
    const server = await serve((n, s) => {
      s.write(answers[n] ?? '');
      if (n === 2) s.end();
    });
    stop = server.close;
    const pool = new RawHttpPool('127.0.0.1', server.port, 5000);
    for (let i = 0; i < answers.length; i++) {
      expect(await pool.exchange('GET / HTTP/1.1\r\n\r\n', sink, undefined)).toBeUndefined();
    }
  });

  it('replaces a kept-alive connection the server closed while it was idle', async () => {
    const server = await serve((n, s) => {
      s.write(`HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n${n}`);
      // The server drops the connection after answering, without saying so.
      setTimeout(() => s.destroy(), 10);
    });
    stop = server.close;
    const pool = new RawHttpPool('127.0.0.1', server.port, 5000);
    expect((await pool.exchange('GET / HTTP/1.1\r\n\r\n', sink, undefined))?.body.toString()).toBe('0');
    await new Promise((r) => setTimeout(r, 50));
    expect((await pool.exchange('GET / HTTP/1.1\r\n\r\n', sink, undefined))?.body.toString()).toBe('1');
    expect(server.connections()).toBe(2);
  });

  it('reports how far a broken answer got, and does not repeat it on a reused connection', async () => {
    const server = await serve((n, s) => {
      if (n === 0) s.write('HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx');
      else {
        s.write('HTTP/1.1 206 Partial Content\r\nContent-Length: 10\r\n\r\nabcd', () => s.resetAndDestroy());
      }
    });
    stop = server.close;
    const pool = new RawHttpPool('127.0.0.1', server.port, 5000);
    expect((await pool.exchange('GET / HTTP/1.1\r\n\r\n', sink, undefined))?.body.toString()).toBe('x');
    const place = Buffer.alloc(10);
    const progress = { status: 0, placed: 0 };
    expect(await pool.exchange('GET / HTTP/1.1\r\n\r\n', () => place, undefined, progress)).toBeUndefined();
    expect(progress).toEqual({ status: 206, placed: 4 });
    expect(place.subarray(0, 4).toString()).toBe('abcd');
    // The broken exchange was not sent again on a new connection (it used to be, from the start).
    expect(server.connections()).toBe(1);
  });

  it('stops at an abort and on a silent server', async () => {
    const server = await serve(() => undefined);
    stop = server.close;
    const controller = new AbortController();
    const pool = new RawHttpPool('127.0.0.1', server.port, 5000);
    const pending = pool.exchange('GET / HTTP/1.1\r\n\r\n', sink, controller.signal);
    setTimeout(() => controller.abort(), 20);
    expect(await pending).toBeUndefined();
    const impatient = new RawHttpPool('127.0.0.1', server.port, 50);
    expect(await impatient.exchange('GET / HTTP/1.1\r\n\r\n', sink, undefined)).toBeUndefined();
  });
});
