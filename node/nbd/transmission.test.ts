import { createServer } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemoryProvider } from '../../test/support/memory-provider.js';
import { RawClient, requestBytes } from '../../test/support/nbd-raw-client.js';
import * as c from './constants.js';
import { NbdServer } from './index.js';

const MiB = 1024 * 1024;
const SIZE = 64 * MiB;

describe('NBD transmission', () => {
  let provider: MemoryProvider;
  let server: NbdServer;
  let port: number;
  const clients: RawClient[] = [];

  async function client(): Promise<RawClient> {
    const raw = await RawClient.connect(port);
    clients.push(raw);
    return raw;
  }

  beforeEach(async () => {
    provider = new MemoryProvider();
    server = new NbdServer(provider, { maxPayload: MiB });
    ({ port } = await server.listen('127.0.0.1', 0));
  });

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((raw) => raw.close()));
    await server.close();
  });

  describe('with simple replies', () => {
    it('writes, reads back, flushes, trims and zeroes', async () => {
      const raw = await client();
      const { size, flags } = await raw.go('disk');
      expect(size).toBe(SIZE);
      const want = c.FLAG_HAS_FLAGS | c.FLAG_SEND_FLUSH | c.FLAG_SEND_FUA | c.FLAG_SEND_TRIM | c.FLAG_SEND_WRITE_ZEROES;
      expect(flags & want).toBe(want);
      expect(flags & (c.FLAG_READ_ONLY | c.FLAG_CAN_MULTI_CONN | c.FLAG_SEND_DF)).toBe(0);

      const data = Buffer.alloc(10_000, 'a');
      raw.request(c.CMD_WRITE, 1n, 4000, data.length, c.CMD_FLAG_FUA, data);
      expect(await raw.simpleReply()).toMatchObject({ handle: 1n, error: 0 });
      raw.request(c.CMD_READ, 2n, 3999, 10_002);
      const read = await raw.simpleReply(10_002);
      expect(read.payload.equals(Buffer.concat([Buffer.alloc(1), data, Buffer.alloc(1)]))).toBe(true);
      raw.request(c.CMD_FLUSH, 3n, 0, 0);
      expect((await raw.simpleReply()).error).toBe(0);
      raw.request(c.CMD_TRIM, 4n, 4096, 4096);
      expect((await raw.simpleReply()).error).toBe(0);
      raw.request(c.CMD_WRITE_ZEROES, 5n, 8192, 4096);
      expect((await raw.simpleReply()).error).toBe(0);
      expect(provider.allocatedBlocks('disk')).toEqual([0, 3]);
      raw.request(c.CMD_READ, 6n, 4096, 8192);
      expect((await raw.simpleReply(8192)).payload.every((b) => b === 0)).toBe(true);
    });

    it('maps bounds, flags and unknown commands to EINVAL / ENOSPC', async () => {
      const raw = await client();
      await raw.go('disk');
      raw.request(c.CMD_READ, 1n, SIZE - 512, 1024);
      expect((await raw.simpleReply()).error).toBe(c.EINVAL);
      raw.request(c.CMD_WRITE, 2n, SIZE - 512, 1024, 0, Buffer.alloc(1024));
      expect((await raw.simpleReply()).error).toBe(c.ENOSPC);
      raw.request(c.CMD_WRITE_ZEROES, 3n, SIZE, 1);
      expect((await raw.simpleReply()).error).toBe(c.ENOSPC);
      raw.request(c.CMD_TRIM, 4n, SIZE, 1);
      expect((await raw.simpleReply()).error).toBe(c.EINVAL);
      raw.request(42, 5n, 0, 0);
      expect((await raw.simpleReply()).error).toBe(c.EINVAL);
      raw.request(c.CMD_READ, 6n, 0, 512, c.CMD_FLAG_DF); // DF needs structured replies
      expect((await raw.simpleReply()).error).toBe(c.EINVAL);
      raw.request(c.CMD_BLOCK_STATUS, 7n, 0, 512); // no meta context
      expect((await raw.simpleReply()).error).toBe(c.EINVAL);
      raw.request(c.CMD_READ, 8n, 0, 2 * MiB); // above maxPayload
      expect((await raw.simpleReply()).error).toBe(c.EINVAL);
      raw.request(c.CMD_CACHE, 9n, 0, 2 * MiB);
      expect((await raw.simpleReply()).error).toBe(0);
    });

    it('refuses a write above maxPayload with EINVAL and stays in sync', async () => {
      const raw = await client();
      await raw.go('disk');
      raw.request(c.CMD_WRITE, 1n, 0, 2 * MiB, 0, Buffer.alloc(2 * MiB, 1));
      expect(await raw.simpleReply()).toMatchObject({ handle: 1n, error: c.EINVAL });
      raw.request(c.CMD_READ, 2n, 0, 16);
      expect((await raw.simpleReply(16)).payload.every((b) => b === 0)).toBe(true);
    });

    it('answers EPERM to writes on a read-only snapshot', async () => {
      const raw = await client();
      const { flags } = await raw.go('disk@snap');
      expect(flags & c.FLAG_READ_ONLY).toBe(c.FLAG_READ_ONLY);
      expect(flags & c.FLAG_SEND_TRIM).toBe(0);
      raw.request(c.CMD_WRITE, 1n, 0, 512, 0, Buffer.alloc(512, 1));
      expect((await raw.simpleReply()).error).toBe(c.EPERM);
      raw.request(c.CMD_TRIM, 2n, 0, 512);
      expect((await raw.simpleReply()).error).toBe(c.EPERM);
      raw.request(c.CMD_WRITE_ZEROES, 3n, 0, 512);
      expect((await raw.simpleReply()).error).toBe(c.EPERM);
    });

    it('closes the connection on a bad request magic, and closes the device', async () => {
      const raw = await client();
      await raw.go('disk');
      raw.send(requestBytes(c.CMD_READ, 1n, 0, 512, 0, 0xdeadbeef));
      expect(await raw.closedByServer()).toBe(true);
      await expect.poll(() => provider.opened[0]?.closed).toBe(true);
    });
  });

  describe('with structured replies', () => {
    it('answers reads with one OFFSET_DATA chunk and errors with an ERROR chunk carrying a message', async () => {
      const raw = await client();
      const { flags } = await raw.go('disk', { structured: true });
      expect(flags & c.FLAG_SEND_DF).toBe(c.FLAG_SEND_DF);
      raw.request(c.CMD_WRITE, 1n, 0, 3, 0, Buffer.from('abc'));
      expect((await raw.reply()).error).toBe(0);

      raw.request(c.CMD_READ, 2n, 1, 4, c.CMD_FLAG_DF);
      const chunk = await raw.reply();
      expect(chunk).toMatchObject({ magic: c.STRUCTURED_REPLY_MAGIC, handle: 2n, type: c.REPLY_TYPE_OFFSET_DATA });
      expect(chunk.flags & c.REPLY_FLAG_DONE).toBe(c.REPLY_FLAG_DONE);
      expect(Number(chunk.payload.readBigUInt64BE(0))).toBe(1);
      expect(chunk.payload.subarray(8).toString('latin1')).toBe('bc\0\0');

      raw.request(c.CMD_READ, 3n, SIZE, 1);
      const error = await raw.reply();
      expect(error).toMatchObject({ handle: 3n, type: c.REPLY_TYPE_ERROR, error: c.EINVAL });
      expect(error.flags & c.REPLY_FLAG_DONE).toBe(c.REPLY_FLAG_DONE);
      const length = error.payload.readUInt16BE(4);
      expect(error.payload.toString('utf8', 6, 6 + length)).toMatch(/past the end/);

      raw.request(c.CMD_READ, 4n, 0, 0);
      expect(await raw.reply()).toMatchObject({ handle: 4n, type: c.REPLY_TYPE_NONE, flags: c.REPLY_FLAG_DONE });
    });

    it('reports base:allocation extents, honouring REQ_ONE', async () => {
      const raw = await client();
      await raw.go('disk', { meta: true });
      raw.request(c.CMD_WRITE, 1n, 8192, 8192, 0, Buffer.alloc(8192, 7));
      await raw.reply();

      const status = async (offset: number, length: number, flags = 0) => {
        raw.request(c.CMD_BLOCK_STATUS, 2n, offset, length, flags);
        const chunk = await raw.reply();
        expect(chunk.type).toBe(c.REPLY_TYPE_BLOCK_STATUS);
        expect(chunk.payload.readUInt32BE(0)).toBe(c.BASE_ALLOCATION_ID);
        const out: [number, number][] = [];
        for (let at = 4; at < chunk.payload.length; at += 8) {
          out.push([chunk.payload.readUInt32BE(at), chunk.payload.readUInt32BE(at + 4)]);
        }
        return out;
      };
      const hole = c.STATE_HOLE | c.STATE_ZERO;
      expect(await status(0, 65536)).toEqual([
        [8192, hole],
        [8192, 0],
        [49152, hole],
      ]);
      expect(await status(0, 65536, c.CMD_FLAG_REQ_ONE)).toEqual([[8192, hole]]);
      expect(await status(SIZE - 4096, 4096)).toEqual([[4096, hole]]);
      raw.request(c.CMD_BLOCK_STATUS, 3n, SIZE - 4096, 8192);
      expect((await raw.reply()).error).toBe(c.EINVAL);
    });

    it('honours NO_HOLE and FAST_ZERO on WRITE_ZEROES', async () => {
      const raw = await client();
      const { flags } = await raw.go('disk', { structured: true });
      expect(flags & c.FLAG_SEND_FAST_ZERO).toBe(c.FLAG_SEND_FAST_ZERO);
      raw.request(c.CMD_WRITE, 1n, 0, 16384, 0, Buffer.alloc(16384, 9));
      await raw.reply();

      raw.request(c.CMD_WRITE_ZEROES, 2n, 0, 8192, c.CMD_FLAG_NO_HOLE | c.CMD_FLAG_FAST_ZERO);
      expect((await raw.reply()).error).toBe(c.ENOTSUP);
      expect(provider.allocatedBlocks('disk')).toEqual([0, 1, 2, 3]); // untouched

      raw.request(c.CMD_WRITE_ZEROES, 3n, 0, 8192, c.CMD_FLAG_NO_HOLE);
      expect((await raw.reply()).error).toBe(0);
      expect(provider.allocatedBlocks('disk')).toEqual([0, 1, 2, 3]); // zeroed but still allocated

      raw.request(c.CMD_WRITE_ZEROES, 4n, 8192, 8192, c.CMD_FLAG_FAST_ZERO | c.CMD_FLAG_FUA);
      expect((await raw.reply()).error).toBe(0);
      expect(provider.allocatedBlocks('disk')).toEqual([0, 1]); // punched

      raw.request(c.CMD_READ, 5n, 0, 16384);
      const chunk = await raw.reply();
      expect(chunk.payload.subarray(8).every((b) => b === 0)).toBe(true);
    });
  });

  it('serves pipelined requests, matching every reply to its handle without interleaving', async () => {
    const raw = await client();
    await raw.go('disk', { structured: true });
    const count = 200;
    const requests: Buffer[] = [];
    for (let i = 0; i < count; i++) {
      const payload = Buffer.alloc(4096 + i, i % 251);
      requests.push(requestBytes(c.CMD_WRITE, BigInt(i), i * 16384, payload.length), payload);
    }
    raw.send(...requests);
    const handles = new Set<bigint>();
    for (let i = 0; i < count; i++) {
      const reply = await raw.reply();
      expect(reply.error).toBe(0);
      handles.add(reply.handle);
    }
    expect(handles.size).toBe(count);

    const reads: Buffer[] = [];
    for (let i = 0; i < count; i++) reads.push(requestBytes(c.CMD_READ, BigInt(1000 + i), i * 16384, 4096 + i));
    raw.send(...reads);
    for (let i = 0; i < count; i++) {
      const reply = await raw.reply();
      const n = Number(reply.handle) - 1000;
      expect(reply.type).toBe(c.REPLY_TYPE_OFFSET_DATA);
      expect(Number(reply.payload.readBigUInt64BE(0))).toBe(n * 16384);
      expect(reply.payload.subarray(8).equals(Buffer.alloc(4096 + n, n % 251))).toBe(true);
    }
  });

  it('on NBD_CMD_DISC finishes in-flight requests, closes the device, then the socket', async () => {
    const raw = await client();
    await raw.go('disk');
    raw.send(
      requestBytes(c.CMD_WRITE, 1n, 0, 4096),
      Buffer.alloc(4096, 1),
      requestBytes(c.CMD_FLUSH, 2n, 0, 0),
      requestBytes(c.CMD_DISC, 3n, 0, 0),
    );
    expect((await raw.simpleReply()).error).toBe(0);
    expect((await raw.simpleReply()).error).toBe(0);
    expect(await raw.closedByServer()).toBe(true);
    expect(provider.opened[0]?.closed).toBe(true);
    expect(provider.allocatedBlocks('disk')).toEqual([0]);
  });

  it('close() disconnects clients, closing their devices', async () => {
    const a = await client();
    await a.go('disk');
    const b = await client();
    await b.greet();
    await server.close();
    expect(await a.closedByServer()).toBe(true);
    expect(await b.closedByServer()).toBe(true);
    expect(provider.opened.every((device) => device.closed)).toBe(true);
  });

  it('rejects listen() on a port that is taken', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const address = blocker.address();
    const taken = typeof address === 'object' && address ? address.port : 0;
    const other = new NbdServer(provider);
    await expect(other.listen('127.0.0.1', taken)).rejects.toThrow(/EADDRINUSE/);
    await other.close();
    await new Promise<void>((resolve) => blocker.close(() => resolve()));
  });

  it('survives a log function that throws and a client that vanishes mid-request', async () => {
    const noisy = new NbdServer(provider, {
      log: () => {
        throw new Error('log failed');
      },
    });
    const { port: noisyPort } = await noisy.listen('127.0.0.1', 0);
    const raw = await RawClient.connect(noisyPort);
    await raw.go('disk');
    raw.send(requestBytes(c.CMD_WRITE, 1n, 0, 65536), Buffer.alloc(100));
    await raw.close();
    await expect.poll(() => provider.opened[0]?.closed).toBe(true);
    const again = await RawClient.connect(noisyPort);
    await again.go('disk');
    await again.close();
    await noisy.close();
  });
});
