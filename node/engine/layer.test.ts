import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { DATA } from './granule-map.js';
import { directBuffer, Layer } from './layer.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function newLayer(): Promise<Layer> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-layer-'));
  dirs.push(dir);
  const layer = new Layer('l1', dir, false);
  await layer.load();
  return layer;
}

async function read(layer: Layer, position: number, length: number): Promise<Buffer> {
  const out = Buffer.alloc(length);
  await layer.readData(out, 0, length, position);
  return out;
}

it('writes uncached, aligned data past the page cache and reads it back, also after a reopen', async () => {
  const layer = await newLayer();
  await layer.writeData(directBuffer(65536).fill(0xab), 0, 65536, 131072, true);
  expect(layer.directBytes).toBe(65536);
  expect((await read(layer, 131072, 65536)).equals(Buffer.alloc(65536, 0xab))).toBe(true);
  layer.mark(32, 16, DATA);
  const dir = dirs[0] as string;
  await layer.close();
  const again = new Layer('l1', dir, false);
  await again.load();
  expect((await read(again, 131072, 65536)).equals(Buffer.alloc(65536, 0xab))).toBe(true);
  await again.close();
});

it('writes through the page cache what is not aligned (memory, position or length) or not asked to be uncached', async () => {
  const layer = await newLayer();
  const aligned = directBuffer(8192 + 16).fill(1);
  await layer.writeData(aligned, 16, 8192, 0, true); // memory off a page boundary
  await layer.writeData(directBuffer(8192).fill(2), 0, 8192, 512, true); // position
  await layer.writeData(directBuffer(8192).fill(3), 0, 4000, 16384, true); // length
  await layer.writeData(directBuffer(8192).fill(4), 0, 8192, 32768); // not asked
  expect(layer.directBytes).toBe(0);
  expect((await read(layer, 0, 512)).equals(Buffer.alloc(512, 1))).toBe(true);
  expect((await read(layer, 512, 8192)).equals(Buffer.alloc(8192, 2))).toBe(true);
  expect((await read(layer, 16384, 4000)).equals(Buffer.alloc(4000, 3))).toBe(true);
  expect((await read(layer, 32768, 8192)).equals(Buffer.alloc(8192, 4))).toBe(true);
  await layer.close();
});

it('keeps cached and direct writes of the same bytes in order: the last write wins', async () => {
  const layer = await newLayer();
  await layer.writeData(Buffer.alloc(16384, 5), 0, 16384, 0); // cached, still dirty
  await layer.writeData(directBuffer(8192).fill(6), 0, 8192, 4096, true); // direct over part of it
  await layer.writeData(Buffer.alloc(100, 7), 0, 100, 6000); // cached over the direct bytes
  expect(layer.directBytes).toBe(8192);
  const expected = Buffer.alloc(16384, 5);
  expected.fill(6, 4096, 12288);
  expected.fill(7, 6000, 6100);
  expect((await read(layer, 0, 16384)).equals(expected)).toBe(true);
  await layer.flush();
  await layer.close();
});
