import { expect, it } from 'vitest';
import { decodeLeaf, decodeRoot, encodeLeaf, encodeRoot, type Leaf, leafEntries } from './manifest.js';

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
  expect(() => leafEntries(swapped, 'leaf 3')).toThrow(/out of order/);
  expect(() => leafEntries(repeated, 'leaf 3')).toThrow(/out of order/);
  expect(() => leafEntries(page.subarray(0, page.length - 1), 'leaf 3')).toThrow(/bad length/);
  expect(() => leafEntries(encodeRoot({ size: 1, chunkSize: 1, leafChunks: 1, leaves: new Map() }), 'leaf 3')).toThrow(
    /not a leaf page/,
  );
});

it('leafEntries reads the entries decodeLeaf does, in place', () => {
  const leaf: Leaf = new Map([
    [9, id(9)],
    [0, id(100)],
    [4000, id(40)],
  ]);
  const page = encodeLeaf(leaf);
  const entries = leafEntries(page, 'leaf 1');
  const read = Array.from({ length: entries.count }, (_, i) => [entries.position(i), entries.id(i)] as const);
  expect(read.map(([p]) => p)).toEqual([...decodeLeaf(page, 'leaf 1').keys()]);
  for (const [p, chunk] of read) expect(chunk.equals(leaf.get(p) as Buffer)).toBe(true);
  // A view of the page, not a copy.
  expect(entries.id(0).buffer).toBe(page.buffer);
});
