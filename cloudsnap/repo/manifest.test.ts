import { expect, it } from 'vitest';
import { decodeLeaf, decodeRoot, encodeLeaf, encodeRoot, type Leaf } from './manifest.js';

const id = (n: number): Buffer => Buffer.alloc(32, n);

it('decodes what it encodes, entries in position order whatever order they were added in', () => {
  const leaf: Leaf = new Map([
    [7, id(7)],
    [2, id(2)],
    [4095, id(255)],
  ]);
  const back = decodeLeaf(encodeLeaf(leaf), 'leaf 0');
  expect([...back.keys()]).toEqual([2, 7, 4095]);
  expect(back.get(4095)?.equals(id(255))).toBe(true);
  const root = decodeRoot(
    encodeRoot({ size: 3 * 2 ** 30, chunkSize: 65536, leafChunks: 4096, leaves: new Map([[1, id(1)]]) }),
    'root',
  );
  expect(root).toMatchObject({ size: 3 * 2 ** 30, chunkSize: 65536, leafChunks: 4096 });
  expect([...root.leaves.keys()]).toEqual([1]);
});

it('refuses a page whose entries are out of order or repeated (a restore relies on the order)', () => {
  const page = encodeLeaf(
    new Map([
      [1, id(1)],
      [2, id(2)],
    ]),
  );
  // Entries start after the magic (8 bytes) and the count (4); each is a position u32 and an id of 32 bytes.
  const swapped = Buffer.from(page);
  swapped.writeUInt32LE(2, 12);
  swapped.writeUInt32LE(1, 12 + 36);
  expect(() => decodeLeaf(swapped, 'leaf 3 of backup b')).toThrow(
    expect.objectContaining({ code: 'DATA_CORRUPTION', message: 'leaf 3 of backup b has entries out of order' }),
  );
  const repeated = Buffer.from(page);
  repeated.writeUInt32LE(1, 12 + 36);
  expect(() => decodeLeaf(repeated, 'leaf 3')).toThrow(/out of order/);
});
