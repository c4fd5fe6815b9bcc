/**
 * What a backup holds, read from its manifest alone (no data): the byte ranges of the volume that hold data (runs
 * of non-zero chunks; everything else restores as zeros), and a summary (manifest leaves, chunks, bytes).
 */
import { decodeLeaf, decodeRoot } from './repo/manifest.js';
import type { Repository } from './repo/repository.js';

export interface CatalogOptions {
  /** Longest extent list returned; the summary still counts everything. Default 10,000. */
  maxExtents?: number;
  signal?: AbortSignal;
}

/** A byte range of the volume, `[offset, offset + length)`. */
export interface CatalogExtent {
  offset: number;
  length: number;
}

export interface BackupCatalog {
  backup_id: string;
  volume_id: string;
  volume_name: string;
  /** Volume size in bytes. */
  size: number;
  chunk_size: number;
  /** Manifest leaf pages (each covers `leaf_chunks` chunks). */
  leaves: number;
  /** Non-zero chunks the backup holds. */
  chunks: number;
  /** Bytes of the volume those chunks cover (what a restore writes). */
  bytes: number;
  /** Number of data extents (runs of consecutive chunks). */
  extent_count: number;
  /** The data extents in offset order, at most `maxExtents` of them. */
  extents: CatalogExtent[];
  /** True when `extents` was cut at `maxExtents`. */
  truncated: boolean;
}

/** Reads a backup's record and manifest pages and returns its catalog. NOT_FOUND for an unknown backup. */
export async function catalogBackup(
  repo: Repository,
  backupId: string,
  options: CatalogOptions = {},
): Promise<BackupCatalog> {
  const { signal } = options;
  const maxExtents = options.maxExtents ?? 10_000;
  const record = await repo.getBackup(backupId, signal);
  const root = decodeRoot(await repo.getPage(Buffer.from(record.root, 'hex'), signal), `root of backup ${record.id}`);
  const catalog: BackupCatalog = {
    backup_id: record.id,
    volume_id: record.volume_id,
    volume_name: record.volume_name,
    size: root.size,
    chunk_size: root.chunkSize,
    leaves: root.leaves.size,
    chunks: 0,
    bytes: 0,
    extent_count: 0,
    extents: [],
    truncated: false,
  };
  let current: CatalogExtent | undefined;
  const flush = (): void => {
    if (current === undefined) return;
    catalog.extent_count++;
    if (catalog.extents.length < maxExtents) catalog.extents.push(current);
    else catalog.truncated = true;
    current = undefined;
  };
  for (const [leafNo, pageId] of [...root.leaves.entries()].sort((a, b) => a[0] - b[0])) {
    signal?.throwIfAborted();
    const leaf = decodeLeaf(await repo.getPage(pageId, signal), `leaf ${leafNo} of backup ${record.id}`);
    for (const pos of [...leaf.keys()].sort((a, b) => a - b)) {
      const offset = (leafNo * root.leafChunks + pos) * root.chunkSize;
      const length = Math.min(root.chunkSize, root.size - offset);
      catalog.chunks++;
      catalog.bytes += length;
      if (current !== undefined && current.offset + current.length === offset) current.length += length;
      else {
        flush();
        current = { offset, length };
      }
    }
  }
  flush();
  return catalog;
}
