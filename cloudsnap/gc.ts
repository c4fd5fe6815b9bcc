import { randomBytes } from 'node:crypto';
import { FerryError, isFerryError } from '../common/errors.js';
import { type LiveSet, liveChunks } from './live-set.js';
import { encodeIndex, type IndexedPack } from './repo/chunk-index.js';
import { openJson, sealJson, sealObject } from './repo/envelope.js';
import { condemnedKey, indexKey, packKey } from './repo/layout.js';
import type { Repository } from './repo/repository.js';

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
    // A backup that ends between the listing and this read has removed its marker: it no longer runs.
    const body = await repo.store.get(key, { signal }).catch((err: unknown) => {
      if (isFerryError(err, 'NOT_FOUND')) return undefined;
      throw err;
    });
    if (body === undefined) continue;
    const marker = openJson<{ started: string }>(repo.keys, key, body);
    const started = new Date(marker.started);
    if (now.getTime() - started.getTime() > stale) await repo.store.delete([key], { signal });
    else running.push(started);
  }
  const live = await liveChunks(repo, signal);
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
  // Packs no index names: uploaded by a backup that died before its index checkpoint. They hold nothing any backup
  // can reference, so the same two-phase rule applies (a running backup that uploaded one protects it until it ends).
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
  };
  const deleted = new Set<string>();
  for (const packId of [...indexed, ...orphans]) {
    signal?.throwIfAborted();
    const pack = indexed.has(packId) ? repo.index.pack(packId) : undefined;
    const isLive = pack !== undefined && live.holdsAnyOf(pack);
    const since = condemned.get(packId);
    if (isLive) {
      if (since !== undefined) {
        await repo.store.delete([condemnedKey(packId)], { signal });
        result.reprieved++;
      }
      continue;
    }
    if (since === undefined) {
      const key = condemnedKey(packId);
      await repo.store.put(key, sealJson(repo.keys, key, { pack: packId, time: now.toISOString() }), { signal });
      result.condemned++;
      continue;
    }
    const oldEnough = now.getTime() - since.getTime() >= grace;
    const noOlderBackup = running.every((started) => started.getTime() > since.getTime());
    if (!oldEnough || !noOlderBackup) continue;
    const head = await repo.store.head(packKey(packId), { signal });
    await repo.store.delete([packKey(packId)], { signal });
    await repo.store.delete([condemnedKey(packId)], { signal });
    deleted.add(packId);
    result.deleted++;
    result.bytes_deleted += head?.size ?? 0;
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
  for (let i = 0; i < packIds.length; i += PACKS_PER_INDEX) {
    const part = packIds.slice(i, i + PACKS_PER_INDEX);
    const key = indexKey(randomBytes(16).toString('hex'));
    await repo.store.put(key, sealObject(repo.keys, key, encodeIndex(indexedPacks(repo, part))), { signal });
    repo.index.loaded.set(key, part);
  }
  const oldKeys = old.map(([key]) => key);
  await repo.store.delete(oldKeys, { signal });
  for (const key of oldKeys) repo.index.loaded.delete(key);
}

/** Rewrites the index objects that describe deleted packs (new object first, then the old ones go). */
async function rewriteIndex(repo: Repository, deleted: ReadonlySet<string>, signal?: AbortSignal): Promise<void> {
  const touched = [...repo.index.loaded.entries()].filter(([, ids]) => ids.some((id) => deleted.has(id)));
  const keep = [...new Set(touched.flatMap(([, ids]) => ids.filter((id) => !deleted.has(id))))];
  if (keep.length > 0) {
    const key = indexKey(randomBytes(16).toString('hex'));
    await repo.store.put(key, sealObject(repo.keys, key, encodeIndex(indexedPacks(repo, keep))), { signal });
    repo.index.loaded.set(key, keep);
  }
  const oldKeys = touched.map(([key]) => key);
  await repo.store.delete(oldKeys, { signal });
  for (const key of oldKeys) repo.index.loaded.delete(key);
  repo.index.dropPacks(deleted);
}

/** The index entries of packs the index knows, read back from its on-disk copy. */
function indexedPacks(repo: Repository, packIds: readonly string[]): IndexedPack[] {
  const out: IndexedPack[] = [];
  for (const id of packIds) {
    const pack = repo.index.pack(id);
    if (pack === undefined) throw new FerryError('INTERNAL', `the chunk index lost pack ${id}`);
    out.push(pack);
  }
  return out;
}
