import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { chaosRow } from './failover-chaos.js';
import { atMost, percentile } from './failover-verdict.js';
import { countWire, receivedByConnection } from './failover-wire.js';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A TCP server on loopback that swallows what it gets; resolves with its port. */
async function sink(): Promise<number> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((s) => {
    sockets.add(s);
    s.resume();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  });
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

async function send(port: number, bytes: number): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port });
  cleanups.push(async () => void socket.destroy());
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  await new Promise<void>((resolve) => socket.write(randomBytes(bytes), () => resolve()));
  return socket;
}

describe('wire counts from the kernel (ss tcp_info)', () => {
  it('counts the payload each connection into the port received, and only into that port', async () => {
    const [port, other] = [await sink(), await sink()];
    await send(port, 300_000);
    await send(port, 5000);
    await send(other, 7000);
    // All of it delivered before the counter starts.
    await expect
      .poll(async () => [...(await receivedByConnection({ local: [port] })).values()].sort((a, b) => a - b))
      .toEqual([5000, 300_000]);
    const counter = await countWire({ local: [port] });
    // Connections open before the counter started: only what they receive after counts.
    const third = await send(port, 123_456);
    expect(await counter.settle()).toBe(123_456);
    third.destroy();
    // A closed connection keeps what it had received.
    await send(port, 1000);
    expect(await counter.settle()).toBe(124_456);
    expect(counter.connections()).toBe(2);
    expect(await counter.stop()).toBe(124_456);
    const all = await receivedByConnection({ local: [port] });
    expect([...all.values()].sort((a, b) => a - b)).toEqual([1000, 5000, 300_000]);
  });

  it('counts the client side of connections by peer port', async () => {
    const port = await sink();
    const counter = await countWire({ local: [], peer: [port] });
    await send(port, 4096);
    // The client received nothing: its socket counts 0 (what the server received is the server socket's).
    expect(await counter.settle()).toBe(0);
    expect(counter.connections()).toBe(1);
    await counter.stop();
  });
});

describe('verdicts', () => {
  it('percentile by nearest rank: p99 of 20 values is the largest', () => {
    const values = Array.from({ length: 20 }, (_v, i) => 20 - i);
    expect(percentile(values, 50)).toBe(10);
    expect(percentile(values, 99)).toBe(20);
    expect(Number.isNaN(percentile([], 50))).toBe(true);
    expect(atMost(1.1, 1.1)).toBe('met');
    expect(atMost(1.1000001, 1.1)).toBe('missed');
  });
});

describe('the chaos row', () => {
  async function chaosFile(value: unknown): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'ferry-failover-chaos-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const path = join(dir, 'chaos.json');
    await writeFile(path, typeof value === 'string' ? value : JSON.stringify(value));
    return path;
  }
  const trial = (checks: string[]): unknown => ({ violations: checks.map((check) => ({ check, detail: '' })) });

  it('says not run without a file', async () => {
    expect((await chaosRow(join(tmpdir(), 'ferry-no-such-dir', 'chaos.json'))).verdict).toBe('not run');
  });

  it("counts the checker's lost-ack violations and counts the others beside", async () => {
    const trials = [trial(['lost-ack', 'disagree', 'lost-ack']), ...Array.from({ length: 99 }, () => trial([]))];
    const row = await chaosRow(await chaosFile({ seed: 1, trials }));
    expect(row.value).toBe('2 lost over 100 trials');
    expect(row.verdict).toBe('missed');
    expect(row.data?.other_violations).toEqual({ disagree: 1 });
  });

  it("reads the checker's own layout: a trial count and a results array", async () => {
    const results = [trial(['disagree', 'disagree']), trial([]), trial(['lost-ack'])];
    const row = await chaosRow(await chaosFile({ seed: 1, trials: 3, results, failed: 2, lostAcknowledged: 1 }));
    expect(row.value).toBe('1 lost over 3 trials');
    expect(row.data?.other_violations).toEqual({ disagree: 2 });
  });

  it('meets the goal only with no loss over 100 trials', async () => {
    const clean = (n: number): unknown => ({ trials: Array.from({ length: n }, () => trial(['never-written'])) });
    expect((await chaosRow(await chaosFile(clean(100)))).verdict).toBe('met');
    expect((await chaosRow(await chaosFile(clean(10)))).verdict).toMatch(/^not measured: only 10 of 100 trials/);
  });

  it('says not measured when it finds no count of lost writes', async () => {
    expect((await chaosRow(await chaosFile({ trials: [{ ok: true }] }))).verdict).toMatch(/^not measured: no count/);
    expect((await chaosRow(await chaosFile('{'))).verdict).toMatch(/^not measured: .* is not JSON/);
  });
});
