/**
 * The backup's manifest (docs/FORMAT.md): the base backup's root, with the leaf pages of the leaves this backup
 * touches rebuilt. Base leaves are fetched a few ahead of the one being filled; finished leaves are uploaded a few at
 * a time while later batches are processed; the root goes up last (stage "commit").
 */

import { decodeLeaf, decodeRoot, encodeLeaf, encodeRoot, type Leaf, type Root } from '../repo/manifest.js';
import type { Repository } from '../repo/repository.js';

/** Base leaf pages fetched ahead of the leaf being processed. */
const LEAF_PREFETCH = 4;
/** Leaf page uploads in flight. */
const LEAF_PUTS = 8;

export interface ManifestInput {
  repo: Repository;
  /** The base backup's id and root page, for an incremental. */
  base: { id: string; rootPage: Buffer } | undefined;
  /** Chunks the base backup holds (the new count starts from it). */
  baseChunks: number;
  /** The leaves the diff touches, in order (surveyDiff). */
  touched: readonly number[];
  size: number;
  signal?: AbortSignal;
}

export class ManifestBuilder {
  /** Non-zero chunks the backup holds (kept up to date as leaves finish). */
  chunksTotal: number;
  private readonly repo: Repository;
  private readonly signal: AbortSignal | undefined;
  private readonly baseRoot: Root | undefined;
  private readonly baseId: string | undefined;
  private readonly touched: readonly number[];
  private readonly root: Root;
  private readonly leafFetches = new Map<number, Promise<Leaf>>();
  private fetchedUpTo = 0;
  /** Leaf pages being uploaded; the root is written once they all are. */
  private readonly leafPuts: Promise<void>[] = [];
  private leafNo = -1;
  private current: Leaf = new Map();
  private baseLeafSize = 0;

  constructor(input: ManifestInput) {
    const { repo, base, size } = input;
    this.repo = repo;
    this.signal = input.signal;
    this.touched = input.touched;
    this.chunksTotal = input.baseChunks;
    this.baseId = base?.id;
    this.baseRoot = base === undefined ? undefined : decodeRoot(base.rootPage, `root of backup ${base.id}`);
    const C = repo.chunkSize;
    const L = repo.leafChunks;
    this.root = { size, chunkSize: C, leafChunks: L, leaves: new Map(this.baseRoot?.leaves ?? []) };
    const totalChunks = Math.ceil(size / C);
    for (const leafNo of [...this.root.leaves.keys()]) if (leafNo * L >= totalChunks) this.root.leaves.delete(leafNo);
  }

  /** The leaf being filled. */
  get leaf(): Leaf {
    return this.current;
  }

  /** Fetches the next base leaves the backup changes, up to LEAF_PREFETCH at once. */
  prefetch(): void {
    while (this.fetchedUpTo < this.touched.length && this.leafFetches.size < LEAF_PREFETCH) {
      const n = this.touched[this.fetchedUpTo++] as number;
      const pageId = this.baseRoot?.leaves.get(n);
      if (pageId === undefined || this.baseId === undefined) continue;
      const what = `leaf ${n} of backup ${this.baseId}`;
      const p = this.repo.getPage(pageId, this.signal).then((page) => decodeLeaf(page, what));
      p.catch(() => undefined);
      this.leafFetches.set(n, p);
    }
  }

  /** Moves to leaf `n` (the base's copy of it, or an empty one), finishing the one before. */
  async enter(n: number): Promise<void> {
    if (n === this.leafNo) return;
    await this.finishLeaf();
    this.leafNo = n;
    this.current = new Map();
    this.baseLeafSize = 0;
    const fetched = this.leafFetches.get(n);
    if (fetched !== undefined) {
      this.leafFetches.delete(n);
      this.current = await fetched;
      this.baseLeafSize = this.current.size;
    }
    this.prefetch();
  }

  /** Uploads the leaf being filled (or drops it from the root when it is empty). */
  async finishLeaf(): Promise<void> {
    if (this.leafNo < 0) return;
    this.chunksTotal += this.current.size - this.baseLeafSize;
    if (this.current.size === 0) {
      this.root.leaves.delete(this.leafNo);
      return;
    }
    const n = this.leafNo;
    const put = this.repo.putPage(encodeLeaf(this.current), this.signal).then((pageId) => {
      this.root.leaves.set(n, pageId);
    });
    put.catch(() => undefined);
    this.leafPuts.push(put);
    if (this.leafPuts.length >= LEAF_PUTS) await this.leafPuts.shift();
  }

  /** Waits for every leaf upload, then stores the root page; returns its id. */
  async putRoot(): Promise<Buffer> {
    await Promise.all(this.leafPuts);
    return this.repo.putPage(encodeRoot(this.root), this.signal);
  }
}
