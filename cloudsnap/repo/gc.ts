import { isFerryError } from '../../common/index.js';
import { packKey } from './layout.js';
import { type LiveSet, liveChunks } from './live-set.js';
import type { Repository } from './repository.js';
import { type RunningMarker, readMarker } from './running-markers.js';

export interface GcOptions {
  /** How long a pack stays condemned before it may be deleted; default 1 hour. */
  graceMs?: number;
  /** `running/` markers older than this belong to backups that died; default 24 hours. */
  staleMs?: number;
  /** The clock (tests inject one). */
  now?: () => Date;
  signal?: AbortSignal;
}

export interface GcResult {
  live_chunks: number;
  packs: number;
  condemned: number;
  deleted: number;
  reprieved: number;
  bytes_deleted: number;
  /**
   * Backups whose record does not open (`backups/<id>: reason`). While there are any, collection condemns and
   * deletes nothing (what their manifests reference is unknown): delete those backups, then collect again.
   */
  damaged_backups: string[];
  /** Packs whose own header does not open: never condemned or deleted by collection (`packs/..: reason`). */
  unreadable_packs: string[];
}

/**
 * Two-phase collection of unreferenced packs, safe while backups run (docs/FORMAT.md, "Deleting backups and
 * collecting garbage"): condemn what no backup references, delete in a later run only what stayed unreferenced for
 * the grace period and that no backup started before the condemnation can still be using.
 */
export async function collectGarbage(repo: Repository, options: GcOptions = {}): Promise<GcResult> {
  const signal = options.signal;
  const now = (options.now ?? (() => new Date()))();
  const grace = options.graceMs ?? 3_600_000;
  const stale = options.staleMs ?? 86_400_000;
  await repo.refreshIndex(signal);
  const running: Date[] = [];
  for await (const key of repo.keysUnder('running/', signal)) {
    // A backup that ends between the listing and this read has removed its marker: it no longer runs. A marker that
    // does not open counts as started when it was written, and goes by the stale rule like any other.
    let marker: RunningMarker | undefined;
    try {
      marker = await readMarker(repo, key, signal);
    } catch (err: unknown) {
      if (!isFerryError(err, 'DATA_CORRUPTION')) throw err;
      const info = await repo.headObject(key, signal);
      marker = { id: key, volume: '', started: (info?.lastModified ?? now).toISOString() };
    }
    if (marker === undefined) continue;
    const started = new Date(marker.started);
    if (now.getTime() - started.getTime() > stale) await repo.deleteObjects([key], signal);
    else running.push(started);
  }
  const { records, damaged } = await repo.scanBackups(signal);
  if (damaged.length > 0) {
    return {
      live_chunks: 0,
      packs: 0,
      condemned: 0,
      deleted: 0,
      reprieved: 0,
      bytes_deleted: 0,
      damaged_backups: damaged.map((d) => `${d.object}: ${d.reason}`),
      unreadable_packs: [],
    };
  }
  const live = await liveChunks(repo, signal, records);
  try {
    return await sweep(repo, live, running, now, grace, signal);
  } finally {
    live.close();
  }
}

/** Condemns, reprieves and deletes packs against the live set (the second half of collectGarbage). */
async function sweep(
  repo: Repository,
  live: LiveSet,
  running: readonly Date[],
  now: Date,
  grace: number,
  signal: AbortSignal | undefined,
): Promise<GcResult> {
  const condemned = await repo.condemned(signal);
  // Pack ids only: each pack's chunks are read back from the index's disk copy when its turn comes.
  const indexed = new Set<string>();
  for (const packIds of repo.index.loaded.values()) {
    for (const packId of packIds) if (repo.index.hasPack(packId)) indexed.add(packId);
  }
  // Packs no index names: uploaded since the index was loaded (which indexed again every pack it found unnamed) by a
  // backup not yet at its checkpoint, or whose header does not open. Their headers are read below; the same two-phase
  // rule applies (a running backup that uploaded one protects it until it ends).
  const orphans = new Set<string>();
  for await (const key of repo.keysUnder('packs/', signal)) {
    const packId = key.slice(key.lastIndexOf('/') + 1);
    if (!indexed.has(packId)) orphans.add(packId);
  }
  const result: GcResult = {
    live_chunks: live.size,
    packs: indexed.size + orphans.size,
    condemned: 0,
    deleted: 0,
    reprieved: 0,
    bytes_deleted: 0,
    damaged_backups: [],
    unreadable_packs: [],
  };
  const deleted = new Set<string>();
  const reprieve = async (packId: string, since: Date | undefined): Promise<void> => {
    if (since === undefined) return;
    await repo.reprieve(packId, signal);
    result.reprieved++;
  };
  for (const packId of [...indexed, ...orphans]) {
    signal?.throwIfAborted();
    const since = condemned.get(packId);
    // The index says what a pack holds, but the pack's own header is the truth: a pack is condemned or deleted only
    // when its header, read now, names no live chunk. One the index does not know is judged by its header alone.
    let pack = indexed.has(packId) ? repo.index.pack(packId) : undefined;
    if (pack !== undefined && live.holdsAnyOf(pack)) {
      await reprieve(packId, since);
      continue;
    }
    const oldEnough = since !== undefined && now.getTime() - since.getTime() >= grace;
    const noOlderBackup = since !== undefined && running.every((started) => started.getTime() > since.getTime());
    if (pack === undefined || (oldEnough && noOlderBackup)) {
      try {
        pack = await repo.readPackHeader(packId, { signal });
      } catch (err: unknown) {
        if (isFerryError(err, 'NOT_FOUND')) {
          // Deleted since the listing (another collector): only its marker may be left.
          if (since !== undefined) await repo.reprieve(packId, signal);
          continue;
        }
        if (!isFerryError(err, 'DATA_CORRUPTION')) throw err;
        result.unreadable_packs.push(`${packKey(packId)}: ${err.message}`);
        await reprieve(packId, since);
        continue;
      }
      if (live.holdsAnyOf(pack)) {
        // Live by its header, whatever the index said: index it again, so that backups and restores find it.
        await repo.writeIndex([pack], signal);
        await reprieve(packId, since);
        continue;
      }
    }
    if (since === undefined) {
      await repo.condemn(packId, now, signal);
      result.condemned++;
      continue;
    }
    if (!oldEnough || !noOlderBackup) continue;
    const bytes = await repo.deletePack(packId, signal);
    deleted.add(packId);
    result.deleted++;
    result.bytes_deleted += bytes;
  }
  if (deleted.size > 0) await rewriteIndex(repo, deleted, signal);
  if (repo.index.loaded.size > CONSOLIDATE_ABOVE) await consolidateIndex(repo, signal);
  return result;
}

/** Index objects beyond which collection merges them, so listing the index stays one request. */
const CONSOLIDATE_ABOVE = 64;
/** Packs per consolidated index object (about 45 MiB of index with 16 MiB packs of 64 KiB chunks). */
const PACKS_PER_INDEX = 4096;

/** Merges many small index objects into few large ones (written first; the old ones are deleted after). */
async function consolidateIndex(repo: Repository, signal?: AbortSignal): Promise<void> {
  const old = [...repo.index.loaded.entries()];
  const packIds = [...new Set(old.flatMap(([, ids]) => ids))];
  const groups: string[][] = [];
  for (let i = 0; i < packIds.length; i += PACKS_PER_INDEX) groups.push(packIds.slice(i, i + PACKS_PER_INDEX));
  await repo.replaceIndexObjects(
    groups,
    old.map(([key]) => key),
    signal,
  );
}

/** Rewrites the index objects that describe deleted packs (new object first, then the old ones go). */
async function rewriteIndex(repo: Repository, deleted: ReadonlySet<string>, signal?: AbortSignal): Promise<void> {
  const touched = [...repo.index.loaded.entries()].filter(([, ids]) => ids.some((id) => deleted.has(id)));
  const keep = [...new Set(touched.flatMap(([, ids]) => ids.filter((id) => !deleted.has(id))))];
  await repo.replaceIndexObjects(
    keep.length > 0 ? [keep] : [],
    touched.map(([key]) => key),
    signal,
  );
  repo.index.dropPacks(deleted);
}
