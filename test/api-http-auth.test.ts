/**
 * Authentication before bodies, over a real HTTP socket (startApiServer, bearer tokens): an unauthenticated POST is
 * answered 401 at once, whatever its Content-Length, and the connection is closed without the server reading the
 * body; an authenticated one over the size limit gets 413 the same way.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  bearerAuth,
  createApp,
  createTokenVerifier,
  mintToken,
  type RunningApiServer,
  startApiServer,
} from '../api/index.js';
import { openEngine, type VolumeEngine } from '../node/index.js';

const SECRET = randomBytes(32);
let dataDir: string;
let engine: VolumeEngine;
let server: RunningApiServer;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'ferry-api-http-auth-'));
  engine = await openEngine({ dataDir });
  const verifier = await createTokenVerifier({ sharedSecrets: [SECRET] });
  server = await startApiServer(createApp({ engine, authenticate: bearerAuth(verifier) }), '127.0.0.1', 0);
});

afterAll(async () => {
  await server.close();
  await engine.close();
  await rm(dataDir, { recursive: true, force: true });
});

/** What a raw exchange showed: the answer's head, and how many body bytes the client got onto the wire. */
interface Exchange {
  head: string;
  bodyBytesWritten: number;
}

/**
 * Sends `POST /v1/volumes` with `Content-Length: declared`, then writes the body in 64 KiB pieces (waiting when the
 * socket pushes back) until all is sent or the server closes the connection.
 */
function postRaw(url: string, declared: number, headers: Record<string, string> = {}): Promise<Exchange> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    const piece = Buffer.alloc(64 * 1024, 0x20);
    let received = '';
    let written = 0;
    let closed = false;
    let headBytes = 0;
    const finish = (): void => {
      if (closed) return;
      closed = true;
      socket.destroy();
      resolve({ head: received.split('\r\n\r\n')[0] ?? '', bodyBytesWritten: written });
    };
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
    });
    socket.on('end', finish);
    socket.on('close', finish);
    socket.on('error', () => finish());
    const pump = (): void => {
      while (!closed && written < declared) {
        const n = Math.min(piece.length, declared - written);
        written += n;
        if (!socket.write(piece.subarray(0, n))) {
          socket.once('drain', pump);
          return;
        }
      }
      if (!closed && written >= declared) setTimeout(finish, 5000).unref();
    };
    socket.on('connect', () => {
      const lines = [
        'POST /v1/volumes HTTP/1.1',
        `Host: ${hostname}:${port}`,
        'Content-Type: application/json',
        `Content-Length: ${declared}`,
        ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
        '',
        '',
      ];
      const head = Buffer.from(lines.join('\r\n'));
      headBytes = head.length;
      socket.write(head);
      // Wait for the answer before sending a byte of body: it must come without one.
      socket.once('data', () => pump());
    });
    socket.setTimeout(20_000, () => reject(new Error(`no answer; ${headBytes} header bytes sent`)));
  });
}

const HUGE = 256 * 1024 * 1024;

describe('authentication before the body', () => {
  it('answers an unauthenticated POST declaring 256 MiB with 401 before any body byte, and does not read the body', async () => {
    const exchange = await postRaw(server.url, HUGE);
    expect(exchange.head).toMatch(/^HTTP\/1\.1 401 /);
    expect(exchange.head.toLowerCase()).toContain('connection: close');
    expect(exchange.head.toLowerCase()).toContain('www-authenticate: bearer');
    // The server closed the connection: the client could not get the body onto the wire (at most the socket buffers).
    expect(exchange.bodyBytesWritten).toBeLessThan(HUGE / 4);
  });

  it('closes after a 401 to a 1 MB body within the size limit too (the server would otherwise read it to keep alive)', async () => {
    const exchange = await postRaw(server.url, 1_000_000);
    expect(exchange.head).toMatch(/^HTTP\/1\.1 401 /);
    expect(exchange.head.toLowerCase()).toContain('connection: close');
  });

  it('answers an authenticated POST declaring more than 1 MiB with 413 before any body byte, and closes', async () => {
    const token = await mintToken(SECRET, { sub: 'alice', roles: ['system.user'] });
    const exchange = await postRaw(server.url, HUGE, { Authorization: `Bearer ${token}` });
    expect(exchange.head).toMatch(/^HTTP\/1\.1 413 /);
    expect(exchange.head.toLowerCase()).toContain('connection: close');
    expect(exchange.bodyBytesWritten).toBeLessThan(HUGE / 4);
  });

  it('checks the token before the size: a 2 MiB unauthenticated body is 401, not 413', async () => {
    const response = await fetch(`${server.url}/v1/volumes`, { method: 'POST', body: ' '.repeat(2 * 1024 * 1024) });
    expect(response.status).toBe(401);
    expect(await response.json()).toMatchObject({ code: 'UNAUTHENTICATED' });
  });

  it('keeps the connection of an authenticated small request open (keep-alive)', async () => {
    const token = await mintToken(SECRET, { sub: 'alice', roles: ['system.user'] });
    const response = await fetch(`${server.url}/v1/volumes`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'kept', spec: { size: 1048576 } }),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('connection')).not.toBe('close');
  });
});
