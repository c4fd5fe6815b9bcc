/**
 * Index objects are a cache of what packs hold; pack headers are the truth (docs/FORMAT.md, "Damage and repair").
 * A repair compares the index merged in memory with a listing of `packs/`: packs no healthy index object names have
 * their own headers read and are indexed again (in new index objects, written first), packs the index names that
 * no longer exist are marked missing (backups never reuse their chunks), and damaged index objects are deleted last.
 */
import { isFerryError } from '../../common/index.js';
import type { IndexedPack } from './chunk-index.js';
import type { Repository } from './repository.js';

/** An object of the repository that did not open, and why. */
export interface ObjectDamage {
  object: string;
  reason: string;
}

/** What a repair of the index found and did. */
export interface IndexRepairReport {
  /** Healthy index objects merged in. */
  index_objects: number;
  /** Index objects that did not open (altered, truncated, not an index): replaced, then deleted. */
  damaged: ObjectDamage[];
  /** Packs in the store. */
  packs: number;
  /** Packs no healthy index object named: their own headers were read and they are indexed again. */
  packs_reindexed: number;
  /** Packs an index object names that do not exist (deleted by garbage collection, or lost): never reused. */
  packs_missing: string[];
  /** Packs whose own header does not open: left as they are and not indexed (verify names what they affect). */
  packs_unreadable: ObjectDamage[];
  /** Index objects the repair wrote. */
  written: string[];
  /** Damaged index objects the repair deleted (after writing what replaces them). */
  deleted: string[];
}

/** Header reads in flight during a repair. */
const HEADER_READS = 8;
/** Packs per index object a repair writes (so a crash mid-repair loses little of its work). */
const PACKS_PER_OBJECT = 256;

/**
 * Reconciles `repo`'s index (already merged from the healthy index objects) with the packs in its store, and
 * deletes the `damaged` index objects once what they described is indexed again. With `write` false, packs are
 * indexed again in memory only, and nothing in the store changes.
 */
export async function reconcileIndex(
  repo: Repository,
  damaged: readonly ObjectDamage[],
  signal?: AbortSignal,
  write = true,
): Promise<IndexRepairReport> {
  const report: IndexRepairReport = {
    index_objects: repo.index.loaded.size,
    damaged: [...damaged],
    packs: 0,
    packs_reindexed: 0,
    packs_missing: [],
    packs_unreadable: [],
    written: [],
    deleted: [],
  };
  const stored = new Map<string, number>();
  for await (const o of repo.objectsUnder('packs/', signal))
    stored.set(o.key.slice(o.key.lastIndexOf('/') + 1), o.size);
  report.packs = stored.size;

  const missing = new Set<string>();
  for (const ids of repo.index.loaded.values()) {
    for (const id of ids) if (!stored.has(id) && repo.index.hasPack(id)) missing.add(id);
  }
  // A chunk of a missing pack that another pack also holds is looked up there from now on; one no other pack holds
  // stays with the missing pack (a restore or verify then names it). Backups never reuse a missing pack's chunks.
  if (missing.size > 0) {
    const saved = [...missing].flatMap((id) => repo.index.pack(id) ?? []);
    repo.index.dropPacks(missing);
    const others = new Set(repo.index.loaded.values().flat());
    for (const id of others) {
      const pack = repo.index.pack(id);
      if (pack !== undefined) repo.index.add(pack);
    }
    for (const pack of saved) repo.index.add(pack);
  }
  for (const id of missing) repo.missingPacks.add(id);
  report.packs_missing = [...missing];

  const unindexed = [...stored.entries()].filter(([id]) => !repo.index.hasPack(id));
  let batch: IndexedPack[] = [];
  const flush = async (): Promise<void> => {
    if (batch.length === 0) return;
    const packs = batch;
    batch = [];
    if (write) report.written.push(await repo.writeIndex(packs, signal));
    else for (const p of packs) repo.index.add(p);
    report.packs_reindexed += packs.length;
  };
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let item = unindexed[next++]; item !== undefined; item = unindexed[next++]) {
      const [id, size] = item;
      try {
        batch.push(await repo.readPackHeader(id, { size, signal }));
      } catch (err: unknown) {
        // Gone since the listing (garbage collection): nothing to index.
        if (isFerryError(err, 'NOT_FOUND')) continue;
        if (!isFerryError(err, 'DATA_CORRUPTION')) throw err;
        report.packs_unreadable.push({ object: `packs/${id.slice(0, 2)}/${id}`, reason: err.message });
        continue;
      }
      if (batch.length >= PACKS_PER_OBJECT) await flush();
    }
  };
  await Promise.all(Array.from({ length: Math.min(HEADER_READS, unindexed.length) }, worker));
  await flush();

  const damagedKeys = damaged.map((d) => d.object);
  if (write && damagedKeys.length > 0) {
    await repo.deleteObjects(damagedKeys, signal);
    report.deleted = damagedKeys;
  }
  return report;
}

/**
 * One line for logs and job statuses: what a repair found and did, or undefined when it found nothing wrong (packs
 * that garbage collection deleted are not damage, and are left out).
 */
export function describeRepair(location: string, r: IndexRepairReport): string | undefined {
  const found: string[] = [];
  for (const d of r.damaged) found.push(`index object ${d.object} is damaged (${d.reason})`);
  if (r.packs_reindexed > 0) found.push(`${r.packs_reindexed} pack(s) were named by no index object`);
  for (const d of r.packs_unreadable) found.push(`${d.object} has no readable header (${d.reason})`);
  if (found.length === 0) return undefined;
  const wrote = r.written.length > 0 ? `; rebuilt from pack headers into ${r.written.join(', ')}` : '';
  const gone = r.deleted.length > 0 ? `; deleted ${r.deleted.join(', ')}` : '';
  const unchanged =
    wrote === '' && gone === '' && (r.damaged.length > 0 || r.packs_reindexed > 0)
      ? '; read from pack headers, the stored index is not repaired yet (ferry cloudsnap repair index)'
      : '';
  return `index of ${location}: ${found.join('; ')}${wrote}${gone}${unchanged}`;
}
