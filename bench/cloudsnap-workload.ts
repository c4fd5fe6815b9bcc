/**
 * The CloudSnap benchmark's workload (issue 3): a volume image of 1 MiB regions, 30% random bytes, 30% text-like
 * (words and newlines), 40% never written (holes), then 1% of its 64 KiB blocks overwritten with random bytes.
 * Region kinds come from a seeded shuffle, so every run (and every size) has the same layout; random bytes come from
 * the CSPRNG (incompressible, never deduplicable).
 */
import { createHash, randomBytes } from 'node:crypto';
import { open } from 'node:fs/promises';

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;
export const REGION = MiB;
export const BLOCK = 64 * KiB;

export type RegionKind = 'random' | 'text' | 'hole';

/** Parses `1G`, `512M`, `16GiB`, `4096` (bytes). */
export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?$/i.exec(text.trim());
  if (m === null) throw new Error(`not a size: ${text} (use e.g. 1G, 512M)`);
  const unit = { '': 1, K: KiB, M: MiB, G: GiB, T: 1024 * GiB }[(m[2] ?? '').toUpperCase()] ?? 1;
  return Math.round(Number(m[1]) * unit);
}

export function formatSize(bytes: number): string {
  if (bytes >= GiB && bytes % GiB === 0) return `${bytes / GiB} GiB`;
  if (bytes >= MiB) return `${(bytes / MiB).toFixed(bytes % MiB === 0 ? 0 : 1)} MiB`;
  return `${bytes} B`;
}

/** xorshift32: small, fast, seeded. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 1;
  }
  next(): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s;
  }
  /** Uniform in [0, n). */
  below(n: number): number {
    return Math.floor((this.next() / 0x1_0000_0000) * n);
  }
}

/** Kinds of the `size / REGION` regions: exactly 30% random, 30% text, the rest holes, shuffled with `seed`. */
export function regionKinds(size: number, seed = 1): RegionKind[] {
  const n = Math.ceil(size / REGION);
  const random = Math.round(n * 0.3);
  const text = Math.round(n * 0.3);
  const kinds: RegionKind[] = [];
  for (let i = 0; i < n; i++) kinds.push(i < random ? 'random' : i < random + text ? 'text' : 'hole');
  const rng = new Rng(seed);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.below(i + 1);
    const t = kinds[i] as RegionKind;
    kinds[i] = kinds[j] as RegionKind;
    kinds[j] = t;
  }
  return kinds;
}

/** A vocabulary of 4096 pseudo-words (2-10 lowercase letters), the same for every run. */
function vocabulary(): Buffer[] {
  const rng = new Rng(0x5eed);
  const words: Buffer[] = [];
  for (let i = 0; i < 4096; i++) {
    const len = 2 + rng.below(9);
    const w = Buffer.alloc(len);
    for (let k = 0; k < len; k++) w[k] = 97 + rng.below(26);
    words.push(w);
  }
  return words;
}
const WORDS = vocabulary();

/**
 * `length` bytes of text-like data: words drawn with a skewed (Zipf-like) frequency, spaces, a newline every ~12
 * words, some capitalised and some followed by punctuation. zstd shrinks it to roughly a third, as it does prose.
 */
export function textBytes(length: number, rng: Rng): Buffer {
  const out = Buffer.allocUnsafe(length);
  let p = 0;
  while (p < length) {
    const u = rng.next() / 0x1_0000_0000;
    const w = WORDS[Math.floor(u * u * u * WORDS.length)] as Buffer;
    const n = Math.min(w.length, length - p);
    w.copy(out, p, 0, n);
    if (n > 0 && rng.below(16) === 0) out[p] = (out[p] as number) - 32;
    p += n;
    if (p < length) {
      const r = rng.below(64);
      if (r < 3 && p + 1 < length) out[p++] = r === 0 ? 46 : r === 1 ? 44 : 59;
      out[p++] = rng.below(12) === 0 ? 10 : 32;
    }
  }
  return out;
}

/** Bytes of region `i` (undefined for a hole). */
export function regionBytes(kind: RegionKind, i: number, length: number): Buffer | undefined {
  if (kind === 'hole') return undefined;
  if (kind === 'random') return randomBytes(length);
  return textBytes(length, new Rng(0x9e3779b9 ^ (i + 1)));
}

/** One overwritten 64 KiB block. */
export interface Change {
  offset: number;
  data: Buffer;
}

/** 1% of the image's 64 KiB blocks (uniformly over the whole image, holes included), each with fresh random bytes. */
export function pickChanges(size: number, fraction = 0.01, seed = 7): Change[] {
  const blocks = Math.floor(size / BLOCK);
  const want = Math.max(1, Math.round(blocks * fraction));
  const rng = new Rng(seed);
  const chosen = new Set<number>();
  while (chosen.size < want) chosen.add(rng.below(blocks));
  return [...chosen].sort((a, b) => a - b).map((b) => ({ offset: b * BLOCK, data: randomBytes(BLOCK) }));
}

export interface ImageInfo {
  size: number;
  regions: Record<RegionKind, number>;
  dataBytes: number;
}

/** Writes a sparse image file: holes are never written, so the file system keeps them as holes. */
export async function writeImage(path: string, size: number, seed = 1): Promise<ImageInfo> {
  const kinds = regionKinds(size, seed);
  const fh = await open(path, 'w');
  const regions: Record<RegionKind, number> = { random: 0, text: 0, hole: 0 };
  let dataBytes = 0;
  try {
    await fh.truncate(size);
    for (let i = 0; i < kinds.length; i++) {
      const kind = kinds[i] as RegionKind;
      regions[kind]++;
      const length = Math.min(REGION, size - i * REGION);
      const data = regionBytes(kind, i, length);
      if (data === undefined) continue;
      await fh.write(data, 0, data.length, i * REGION);
      dataBytes += data.length;
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
  return { size, regions, dataBytes };
}

/** Applies changes to a file in place. */
export async function applyToFile(path: string, changes: readonly Change[]): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    for (const c of changes) await fh.write(c.data, 0, c.data.length, c.offset);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** SHA-256 of a file's bytes (holes read as zeros). */
export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  const fh = await open(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(4 * MiB);
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
    }
  } finally {
    await fh.close();
  }
  return h.digest('hex');
}
