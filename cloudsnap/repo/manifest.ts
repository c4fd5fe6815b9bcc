/**
 * Manifests: which chunk holds each chunk-sized piece of a backed-up volume, as a two-level tree of
 * content-addressed pages, so a backup writes only the pages its changes touch and shares the rest.
 *
 * Leaf page (covers `leafChunks` consecutive chunks): "FRYLEAF1" | count u32 | entries sorted by position:
 *   position in the leaf u32 | chunk id (32). Chunks not listed are all zeros (holes).
 * Root page: "FRYROOT1" | volume size u64 | chunk size u32 | leaf chunks u32 | count u32 | entries sorted:
 *   leaf number u32 | page id (32). Leaves not listed are all zeros.
 * A page's id is HMAC(K_id, "FRYPAGE1" | plaintext); it is stored sealed at manifests/<id[0:2]>/<id>.
 */
import { FerryError } from '../../common/index.js';
import type { RepoKeys } from './crypto.js';

const LEAF = Buffer.from('FRYLEAF1', 'ascii');
const ROOT = Buffer.from('FRYROOT1', 'ascii');
const PAGE = Buffer.from('FRYPAGE1', 'ascii');

/** Position in leaf -> chunk id. */
export type Leaf = Map<number, Buffer>;

export interface Root {
  size: number;
  chunkSize: number;
  leafChunks: number;
  /** Leaf number -> page id. */
  leaves: Map<number, Buffer>;
}

export function pageId(keys: RepoKeys, plaintext: Buffer): Buffer {
  return keys.id(Buffer.concat([PAGE, plaintext]));
}

const byKey = (a: [number, Buffer], b: [number, Buffer]): number => a[0] - b[0];

function encodePairs(magic: Buffer, head: Buffer, pairs: Map<number, Buffer>): Buffer {
  // One comparator for the process and a loop, not closures made per call: those lose their optimized code at every
  // full collection (restore.ts), and a backup writes pages all along.
  const sorted = [...pairs.entries()].sort(byKey);
  const body = Buffer.alloc(4 + sorted.length * 36);
  body.writeUInt32LE(sorted.length, 0);
  for (let i = 0; i < sorted.length; i++) {
    const [k, id] = sorted[i] as [number, Buffer];
    body.writeUInt32LE(k, 4 + i * 36);
    id.copy(body, 8 + i * 36);
  }
  return Buffer.concat([magic, head, body]);
}

/**
 * A leaf page's entries read in place, in position order: what a restore walks, one chunk at a time, instead of a
 * Map with a copied id per chunk (decodeLeaf), which made a third of the garbage of a restore's main thread.
 */
export interface LeafEntries {
  readonly count: number;
  /** Position in the leaf of entry `i`. */
  position(i: number): number;
  /** Chunk id of entry `i`: a view of the page, which it keeps alive. */
  id(i: number): Buffer;
}

/** The pairs from `at`, read in place, after checking the page's length and that their keys ascend. */
function pairsAt(b: Buffer, at: number, what: string): LeafEntries {
  const n = b.readUInt32LE(at);
  if (b.length !== at + 4 + n * 36) throw new FerryError('DATA_CORRUPTION', `${what} has a bad length`);
  const key = (i: number): number => b.readUInt32LE(at + 4 + i * 36);
  let last = -1;
  for (let i = 0; i < n; i++) {
    const k = key(i);
    // Pages are written sorted: readers rely on the order (a restore reads a leaf's chunks in volume order).
    if (k <= last) throw new FerryError('DATA_CORRUPTION', `${what} has entries out of order`);
    last = k;
  }
  return { count: n, position: key, id: (i) => b.subarray(at + 8 + i * 36, at + 40 + i * 36) };
}

function decodePairs(b: Buffer, at: number, what: string): Map<number, Buffer> {
  const pairs = pairsAt(b, at, what);
  const out = new Map<number, Buffer>();
  for (let i = 0; i < pairs.count; i++) out.set(pairs.position(i), Buffer.from(pairs.id(i)));
  return out;
}

export function encodeLeaf(leaf: Leaf): Buffer {
  return encodePairs(LEAF, Buffer.alloc(0), leaf);
}

/** Throws DATA_CORRUPTION unless `b` begins as a leaf page does. */
function checkLeaf(b: Buffer, what: string): void {
  if (b.length < 12 || !b.subarray(0, 8).equals(LEAF))
    throw new FerryError('DATA_CORRUPTION', `${what} is not a leaf page`);
}

export function decodeLeaf(b: Buffer, what: string): Leaf {
  checkLeaf(b, what);
  return decodePairs(b, 8, what);
}

export function leafEntries(b: Buffer, what: string): LeafEntries {
  checkLeaf(b, what);
  return pairsAt(b, 8, what);
}

export function encodeRoot(root: Root): Buffer {
  const head = Buffer.alloc(16);
  head.writeBigUInt64LE(BigInt(root.size), 0);
  head.writeUInt32LE(root.chunkSize, 8);
  head.writeUInt32LE(root.leafChunks, 12);
  return encodePairs(ROOT, head, root.leaves);
}

export function decodeRoot(b: Buffer, what: string): Root {
  if (b.length < 28 || !b.subarray(0, 8).equals(ROOT))
    throw new FerryError('DATA_CORRUPTION', `${what} is not a root page`);
  return {
    size: Number(b.readBigUInt64LE(8)),
    chunkSize: b.readUInt32LE(16),
    leafChunks: b.readUInt32LE(20),
    leaves: decodePairs(b, 24, what),
  };
}
