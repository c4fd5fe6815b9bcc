/**
 * The NBD server against real clients nobody here wrote: libnbd's nbdinfo, nbdcopy and nbdsh, and qemu-img.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, open, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NbdServer } from '../node/index.js';
import { MemoryProvider } from './support/memory-provider.js';
import { ok, run, TOOL_ENV } from './support/run.js';

const MiB = 1024 * 1024;
const SIZE = 64 * MiB;
const ENV = TOOL_ENV;

/** Source image layout: data in these [offset, length] ranges, holes elsewhere. */
const DATA_RANGES: [number, number][] = [
  [5 * MiB, 3 * MiB],
  [36_864_000, 7 * 4096],
  [SIZE - 4096, 4096],
];

describe('NBD server with real clients', () => {
  let dir: string;
  let provider: MemoryProvider;
  let server: NbdServer;
  let base: string;
  const events: string[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ferry-nbd-'));
    provider = new MemoryProvider();
    server = new NbdServer(provider, { log: (event) => events.push(event) });
    const { port } = await server.listen('127.0.0.1', 0);
    base = `nbd://127.0.0.1:${port}`;
  });

  afterAll(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('nbdinfo --list shows both exports, the snapshot read-only, without taking the writer slot', async () => {
    const listing = JSON.parse(await ok('nbdinfo', ['--list', '--json', base])) as {
      exports: { 'export-name': string; is_read_only: boolean; can_multi_conn: boolean; contexts: string[] }[];
    };
    const byName = new Map(listing.exports.map((e) => [e['export-name'], e]));
    expect([...byName.keys()].sort()).toEqual(['disk', 'disk@snap']);
    expect(byName.get('disk')).toMatchObject({ is_read_only: false, can_multi_conn: false });
    expect(byName.get('disk@snap')).toMatchObject({ is_read_only: true });
    expect(byName.get('disk')?.contexts).toContain('base:allocation');
    expect(provider.opened).toHaveLength(0);
  });

  it('nbdinfo shows size, flags and block sizes of an export', async () => {
    const info = JSON.parse(await ok('nbdinfo', ['--json', `${base}/disk`])) as {
      structured: boolean;
      exports: Record<string, unknown>[];
    };
    expect(info.structured).toBe(true);
    expect(info.exports[0]).toMatchObject({
      'export-size': SIZE,
      can_flush: true,
      can_fua: true,
      can_trim: true,
      can_zero: true,
      can_df: true,
      block_size_minimum: 1,
      block_size_preferred: 4096,
      block_size_maximum: 32 * MiB,
    });
  });

  it('nbdcopy writes a sparse file to the server and reads it back bit-identical, holes kept as holes', async () => {
    const source = join(dir, 'source.img');
    const back = join(dir, 'back.img');
    const file = await open(source, 'w');
    await file.truncate(SIZE);
    for (const [offset, length] of DATA_RANGES) await file.write(randomBytes(length), 0, length, offset);
    await file.close();

    await ok('nbdcopy', [source, `${base}/disk`]);
    const map = JSON.parse(await ok('nbdinfo', ['--map', '--json', `${base}/disk`])) as {
      offset: number;
      length: number;
      type: number;
    }[];
    const data = map.filter((e) => (e.type & 1) === 0).map((e) => [e.offset, e.length]);
    expect(data).toEqual(DATA_RANGES);
    expect(map.filter((e) => e.type === 3).reduce((sum, e) => sum + e.length, 0)).toBe(
      SIZE - DATA_RANGES.reduce((sum, [, length]) => sum + length, 0),
    );

    await ok('nbdcopy', [`${base}/disk`, back]);
    expect((await run('cmp', [source, back])).code).toBe(0);
    const [src, dst] = [await stat(source), await stat(back)];
    expect(dst.size).toBe(SIZE);
    if (src.blocks * 512 < SIZE / 2) expect(dst.blocks * 512).toBeLessThan(SIZE / 2); // sparse where the FS can be
  });

  it('qemu-img converts and compares against the export', async () => {
    const source = join(dir, 'source.img');
    const converted = join(dir, 'qemu.raw');
    await ok('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', `${base}/disk`, converted]);
    expect((await run('cmp', [source, converted])).code).toBe(0);
    const compare = await run('qemu-img', ['compare', '-f', 'raw', '-F', 'raw', source, `${base}/disk`]);
    expect(compare.code).toBe(0);
    expect(compare.stdout).toMatch(/identical/);
  });

  it('nbdsh reads, writes, flushes, trims, zeroes and queries block status', async () => {
    const script = `
import json
out = {}
h.pwrite(b"ferry" * 1000, 1048576 + 3)
out["read"] = h.pread(5, 1048576 + 3).decode()
h.flush()
h.pwrite(b"\\x01" * 8192, 2097152, nbd.CMD_FLAG_FUA)
h.trim(4096, 2097152)
h.zero(4096, 2097152 + 4096)
out["trimmed"] = h.pread(8192, 2097152) == bytes(8192)
ext = []
h.block_status(65536, 1048576, lambda ctx, off, e, err: ext.append([ctx, off, list(e)]))
out["status"] = ext
one = []
h.block_status(65536, 0, lambda ctx, off, e, err: one.append(list(e)), nbd.CMD_FLAG_REQ_ONE)
out["one"] = one
out["can_multi_conn"] = h.can_multi_conn()
print(json.dumps(out))
`;
    const out = JSON.parse(await ok('nbdsh', ['--base-allocation', '-u', `${base}/disk`, '-c', script])) as {
      read: string;
      trimmed: boolean;
      status: [string, number, number[]][];
      one: number[][];
      can_multi_conn: boolean;
    };
    expect(out.read).toBe('ferry');
    expect(out.trimmed).toBe(true);
    expect(out.can_multi_conn).toBe(false);
    const [context, offset, entries] = out.status[0] ?? ['', 0, []];
    expect(context).toBe('base:allocation');
    expect(offset).toBe(MiB);
    // 5003 bytes written at 1 MiB + 3 allocate two 4 KiB blocks; the rest of the range is a hole.
    expect(entries).toEqual([8192, 0, 65536 - 8192, 3]);
    expect(out.one).toEqual([[65536, 3]]);
  });

  it('refuses a second writer while nbdsh holds the volume, with the engine reason, and admits it afterwards', async () => {
    const holder: ChildProcessWithoutNullStreams = spawn(
      'nbdsh',
      ['-u', `${base}/disk`, '-c', 'import sys\nprint("ready", flush=True)\nsys.stdin.readline()'],
      { env: ENV },
    );
    const exited = new Promise<number | null>((resolve) => holder.on('close', resolve));
    await new Promise<void>((resolve, reject) => {
      holder.stdout.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
      holder.on('close', () => reject(new Error('nbdsh holder exited early')));
    });

    // qemu prints the server's message; libnbd 1.14 only shows it in its debug output.
    const qemu = await run('qemu-img', ['info', `${base}/disk`]);
    expect(qemu.code).not.toBe(0);
    expect(qemu.stderr).toMatch(/already attached to another writer/);
    const nbdinfo = await run('nbdinfo', [`${base}/disk`], { ...ENV, LIBNBD_DEBUG: '1' });
    expect(nbdinfo.code).not.toBe(0);
    expect(nbdinfo.stderr).toMatch(/server error message: volume disk is already attached to another writer/);
    const copy = await run('nbdcopy', [join(dir, 'source.img'), `${base}/disk`]);
    expect(copy.code).not.toBe(0);
    expect(copy.stderr).toMatch(/policy/);
    // The snapshot stays readable meanwhile.
    await ok('nbdinfo', [`${base}/disk@snap`]);

    holder.stdin.end('\n');
    expect(await exited).toBe(0);
    await ok('nbdinfo', [`${base}/disk`]);
  });

  it('refuses writes to the read-only snapshot export', async () => {
    const script = 'h.pwrite(b"x" * 512, 0)';
    const nbdsh = await run('nbdsh', ['-u', `${base}/disk@snap`, '-c', script]);
    expect(nbdsh.code).not.toBe(0);
    expect(nbdsh.stderr).toMatch(/Operation not permitted|read-only|does not support write/i);
    const copy = await run('nbdcopy', [join(dir, 'source.img'), `${base}/disk@snap`]);
    expect(copy.code).not.toBe(0);
    expect(provider.allocatedBlocks('disk@snap')).toEqual([]);
  });

  it('closed every device it opened, and logged connections', async () => {
    expect(provider.opened.length).toBeGreaterThan(5);
    await expect.poll(() => provider.opened.every((device) => device.closed)).toBe(true);
    expect(events).toContain('nbd.export.refused');
  });
});
