import { randomBytes } from 'node:crypto';
import { FerryError, isFerryError } from '../../common/index.js';
import { type KeyProvider, type KeySource, LOCAL_PROVIDER, lookupOf } from '../../kms/index.js';
import type { GetOptions, ObjectInfo, ObjectStore } from '../store/types.js';
import { Reclaimer } from '../workers/reclaim.js';
import { ChunkIndex, decodeIndex, encodeIndex, type IndexedPack } from './chunk-index.js';
import { configMac, parseConfig, type RepoConfig, unwrapMaster } from './config.js';
import { RepoKeys } from './crypto.js';
import { openJson, openObject, sealJson, sealObject } from './envelope.js';
import { describeRepair, type IndexRepairReport, type ObjectDamage, reconcileIndex } from './index-repair.js';
import { backupKey, CONFIG_KEY, condemnedKey, indexKey, packKey, pageKey } from './layout.js';
import { pageId } from './manifest.js';
import { readStoredPackHeader } from './pack-header.js';
import { PackWriter, type PackWriterOptions } from './pack-writer.js';

export interface RepoOptions {
  /** Chunk size in bytes; default 64 KiB (the engine's changed-block granularity is 4 KiB, so chunks align). */
  chunkSize?: number;
  /** Target pack size in bytes; default 16 MiB. */
  packSize?: number;
  /** Chunks per manifest leaf page; default 4096 (256 MiB of volume with 64 KiB chunks). */
  leafChunks?: number;
}

/** What a completed backup is: its record is the commit point. */
export interface BackupRecord {
  id: string;
  volume_id: string;
  volume_name: string;
  size: number;
  labels: Record<string, string>;
  created: string;
  completed: string;
  /** Root manifest page id (hex). */
  root: string;
  chunk_size: number;
  /** Non-zero chunks the backup holds (what a restore writes). */
  chunks_total: number;
  full: boolean;
  /** The backup whose snapshot this one was diffed against (informational: restores never need it). */
  base_backup?: string;
  stats: {
    bytes_scanned: number;
    bytes_new: number;
    bytes_uploaded: number;
    chunks: number;
    chunks_new: number;
    chunks_zero: number;
    packs: number;
    duration_ms: number;
  };
}

export type { RepoConfig } from './config.js';
export type { IndexRepairReport, ObjectDamage } from './index-repair.js';

/** A backup whose record does not open: listed apart, with the reason. */
export interface DamagedBackup {
  id: string;
  /** The record's object key. */
  object: string;
  reason: string;
}

/** The KEK that wraps a new repository's master secret, and the provider that holds it. */
export interface KekRef {
  /** Provider name: 'local', 'vault', 'aws-kms'. */
  provider: string;
  /** The KEK as that provider names it. */
  kek: string;
}

/** Index objects fetched at once when the index is refreshed. */
const INDEX_FETCHES = 8;
/** Bytes of index objects merged between young-generation collections while loading an index. */
const INDEX_RECLAIM = 2 * 1024 * 1024;

/**
 * A CloudSnap repository on an object store: its keys, its chunk index, manifest pages and backup records.
 * Open one with `Repository.openOrInit`.
 */
export class Repository {
  readonly index = new ChunkIndex();
  /** Packs the index names that were found not to exist: backups never reuse their chunks. */
  readonly missingPacks = new Set<string>();
  private readonly knownPages = new Set<string>();
  private readonly records = new Map<string, BackupRecord>();
  /** Whether this instance has compared its index with the packs in the store (done on its first load). */
  private indexChecked = false;
  private readonly notices: string[] = [];

  private constructor(
    /** Private: everything reaches the store through this class's methods (docs/ARCHITECTURE.md). */
    private readonly store: ObjectStore,
    readonly config: RepoConfig,
    readonly keys: RepoKeys,
  ) {}

  get id(): string {
    return this.config.id;
  }

  /** Where the repository lives (its store's location), for messages. */
  get location(): string {
    return this.store.location;
  }

  get chunkSize(): number {
    return this.config.chunk_size;
  }

  get packSize(): number {
    return this.config.pack_size;
  }

  get leafChunks(): number {
    return this.config.leaf_chunks;
  }

  /**
   * Opens the repository in `store`, creating it (with a new master secret wrapped by `kek`) when there is none.
   * `keys` is one provider or a lookup of the node's providers; a plain `kek` name means the local keyring (or the
   * one provider given). An existing repository is unwrapped with the provider its config names, whatever `kek` says.
   */
  static async openOrInit(
    store: ObjectStore,
    keys: KeySource,
    kek: string | KekRef,
    options: RepoOptions = {},
    signal?: AbortSignal,
  ): Promise<Repository> {
    const existing = await store.head(CONFIG_KEY, { signal });
    if (existing === undefined) {
      const ref =
        typeof kek === 'string' ? { provider: typeof keys === 'function' ? LOCAL_PROVIDER : keys.name, kek } : kek;
      try {
        return await Repository.init(store, lookupOf(keys)(ref.provider), ref.kek, options, signal);
      } catch (err: unknown) {
        if (!isFerryError(err, 'ALREADY_EXISTS')) throw err;
      }
    }
    return Repository.open(store, keys, signal);
  }

  static async init(
    store: ObjectStore,
    provider: KeyProvider,
    kek: string,
    options: RepoOptions,
    signal?: AbortSignal,
  ): Promise<Repository> {
    const id = randomBytes(16).toString('hex');
    const context = { repository: id };
    const master = randomBytes(32);
    const wrapped = await provider.wrap(kek, master, context);
    const body: Omit<RepoConfig, 'mac'> = {
      format: 'ferry-repository',
      version: 1,
      id,
      created: new Date().toISOString(),
      chunk_size: options.chunkSize ?? 64 * 1024,
      leaf_chunks: options.leafChunks ?? 4096,
      pack_size: options.packSize ?? 16 * 1024 * 1024,
      key: { wrapped, context },
    };
    const config: RepoConfig = { ...body, mac: configMac(master, body) };
    await store.put(CONFIG_KEY, Buffer.from(JSON.stringify(config, null, 2)), { ifNoneMatch: true, signal });
    return new Repository(store, config, new RepoKeys(master));
  }

  /**
   * Opens the repository in `store`: the master secret is unwrapped by the provider its config names (looked up in
   * `keys`), and the config's MAC checked. PERMISSION_DENIED says the backups are unreadable (KEK destroyed or access
   * revoked); UNAVAILABLE names the provider that could not be reached.
   */
  static async open(store: ObjectStore, keys: KeySource, signal?: AbortSignal): Promise<Repository> {
    const config = parseConfig(await store.get(CONFIG_KEY, { signal }), store.location);
    const master = await unwrapMaster(keys, config, store.location);
    return new Repository(store, config, new RepoKeys(master));
  }

  /**
   * Wipes the master secret and every key derived from it from memory, and deletes the on-disk chunk index; the
   * instance is unusable afterwards.
   */
  forget(): void {
    this.keys.wipe();
    this.index.close();
  }

  /**
   * Loads index objects written since the last call. Never fails on damage: an index object that does not open is
   * reported (`takeNotices`) and what it described is rebuilt from the packs' own headers (`reconcileIndex`), as on
   * the first load of an instance (which also finds packs no index object names) and whenever index objects merged
   * in earlier are gone and named packs no other object names. With `write: false` (a check that must change
   * nothing, such as verify), what the packs' headers say is indexed in memory only: no index object is written or
   * deleted, and the notice says the damage is still there.
   */
  async refreshIndex(signal?: AbortSignal, options: { write?: boolean } = {}): Promise<void> {
    await this.loadIndex(false, signal, options.write ?? true);
  }

  /**
   * Repairs the index now (`ferry cloudsnap repair index`): loads it, compares it with the packs in the store,
   * indexes again from their headers the packs no healthy index object names, and deletes damaged index objects.
   */
  async repairIndex(signal?: AbortSignal): Promise<IndexRepairReport> {
    const report = await this.loadIndex(true, signal);
    if (report === undefined) throw new FerryError('INTERNAL', `the index of ${this.store.location} was not checked`);
    return report;
  }

  /** Messages about damage found and repaired since the last call (for job statuses and logs). */
  takeNotices(): string[] {
    return this.notices.splice(0);
  }

  private async loadIndex(force: boolean, signal?: AbortSignal, write = true): Promise<IndexRepairReport | undefined> {
    const first = !this.indexChecked;
    let token: string | undefined;
    const listed = new Set<string>();
    const damaged: ObjectDamage[] = [];
    // Each object read and opened is garbage once merged, held in malloc's arena until a collection finds its small
    // handle dead: collected every INDEX_RECLAIM bytes, not after the whole index (which grew the arena by megabytes
    // for a large repository, and a job's malloc memory never shrank back to a small repository's).
    const reclaimer = new Reclaimer(INDEX_RECLAIM, undefined, INDEX_RECLAIM);
    do {
      const page = await this.store.list('index/', { continuationToken: token, signal });
      for (const o of page.objects) listed.add(o.key);
      const fresh = page.objects.filter((o) => !this.index.loaded.has(o.key));
      // Fetched INDEX_FETCHES at a time (one round trip each on a remote store), merged in listing order. Only the
      // fetches in flight are held: a list of all of them kept every object read until the page was done, megabytes
      // for a large repository, which left malloc's arena that much larger for the rest of the job.
      const window: Array<Promise<Buffer | undefined>> = [];
      let requested = 0;
      const fetchNext = (): void => {
        const o = fresh[requested];
        if (o === undefined) return;
        requested++;
        const p = this.getIfPresent(o.key, signal);
        p.catch(() => undefined);
        window.push(p);
      };
      while (window.length < INDEX_FETCHES && requested < fresh.length) fetchNext();
      for (const o of fresh) {
        const sealed = await window.shift();
        fetchNext();
        if (sealed === undefined) continue;
        let packs: ReturnType<typeof decodeIndex>;
        try {
          packs = decodeIndex(openObject(this.keys, o.key, sealed), `index object ${o.key}`);
        } catch (err: unknown) {
          if (!isFerryError(err, 'DATA_CORRUPTION')) throw err;
          damaged.push({ object: o.key, reason: err.message });
          continue;
        }
        for (const p of packs) this.index.add(p);
        this.index.loaded.set(
          o.key,
          packs.map((p) => p.ref.id),
        );
        reclaimer.processed(sealed.length);
      }
      token = page.continuationToken;
    } while (token !== undefined);
    // Index objects merged in earlier and gone now: collection rewrote or merged them (what they named is in newer
    // objects, or deleted), or they were lost. Packs no remaining object names are forgotten, and the check below
    // indexes again, from their own headers, those that still exist.
    const gone = this.index.loaded.keys().filter((key) => !listed.has(key));
    const uncovered = new Set<string>();
    if (gone.length > 0) {
      const packs = gone.map((key) => this.index.loaded.packsOf(key));
      for (const key of gone) this.index.loaded.delete(key);
      const named = new Set(this.index.loaded.values().flat());
      for (const ids of packs) for (const id of ids) if (!named.has(id)) uncovered.add(id);
      this.index.dropPacks(uncovered);
    }
    if (!force && !first && damaged.length === 0 && uncovered.size === 0) return undefined;
    const report = await reconcileIndex(this, damaged, signal, write);
    // A check that wrote nothing is done again by the next load that may write.
    this.indexChecked = write;
    const notice = describeRepair(this.store.location, report);
    if (notice !== undefined) this.notices.push(notice);
    return report;
  }

  /**
   * An object that was listed a moment ago, or undefined when it is gone since: garbage collection may delete a
   * condemned marker or merge index objects between a listing and the read (what they said lives on elsewhere).
   */
  private async getIfPresent(key: string, signal?: AbortSignal): Promise<Buffer | undefined> {
    try {
      return await this.store.get(key, { signal });
    } catch (err: unknown) {
      if (isFerryError(err, 'NOT_FOUND')) return undefined;
      throw err;
    }
  }

  /** Packs condemned by garbage collection (pack id -> time of condemnation). */
  async condemned(signal?: AbortSignal): Promise<Map<string, Date>> {
    const out = new Map<string, Date>();
    for await (const o of this.keysUnder('condemned/', signal)) {
      const sealed = await this.getIfPresent(o, signal);
      if (sealed === undefined) continue;
      const body = openJson<{ pack: string; time: string }>(this.keys, o, sealed);
      out.set(body.pack, new Date(body.time));
    }
    return out;
  }

  /** Every key under a prefix, page by page. */
  async *keysUnder(prefix: string, signal?: AbortSignal): AsyncGenerator<string> {
    let token: string | undefined;
    do {
      const page = await this.store.list(prefix, { continuationToken: token, signal });
      for (const o of page.objects) yield o.key;
      token = page.continuationToken;
    } while (token !== undefined);
  }

  /** Writes an index object describing `packs` (after they are uploaded); returns its key ('' for no packs). */
  async writeIndex(packs: readonly IndexedPack[], signal?: AbortSignal): Promise<string> {
    if (packs.length === 0) return '';
    const key = indexKey(randomBytes(16).toString('hex'));
    await this.store.put(key, sealObject(this.keys, key, encodeIndex(packs)), { signal });
    this.index.loaded.set(
      key,
      packs.map((p) => p.ref.id),
    );
    for (const p of packs) this.index.add(p);
    return key;
  }

  /** Stores a manifest page (once) and returns its id. */
  async putPage(plaintext: Buffer, signal?: AbortSignal): Promise<Buffer> {
    const id = pageId(this.keys, plaintext);
    const hex = id.toString('hex');
    if (!this.knownPages.has(hex)) {
      const key = pageKey(hex);
      await this.store.put(key, sealObject(this.keys, key, plaintext), { signal });
      this.knownPages.add(hex);
    }
    return id;
  }

  async getPage(id: Buffer, signal?: AbortSignal): Promise<Buffer> {
    const hex = id.toString('hex');
    const key = pageKey(hex);
    const plaintext = openObject(this.keys, key, await this.getOrCorrupt(key, 'manifest page', signal));
    if (!pageId(this.keys, plaintext).equals(id)) {
      throw new FerryError('DATA_CORRUPTION', `manifest page ${key} does not match its id`);
    }
    this.knownPages.add(hex);
    return plaintext;
  }

  /** A GET where a missing object means the repository is damaged, not that the caller asked for something absent. */
  async getOrCorrupt(
    key: string,
    what: string,
    signal?: AbortSignal,
    range?: { offset: number; length: number },
    into?: Buffer,
  ): Promise<Buffer> {
    try {
      return await this.store.get(key, {
        signal,
        ...(range !== undefined && { range }),
        ...(into !== undefined && { into }),
      });
    } catch (err: unknown) {
      if (isFerryError(err, 'NOT_FOUND')) {
        throw new FerryError('DATA_CORRUPTION', `${what} ${key} is missing from ${this.store.location}`, {
          cause: err,
        });
      }
      throw err;
    }
  }

  /** Commits a backup: after this resolves it is listed and restorable. */
  async putBackup(record: BackupRecord, signal?: AbortSignal): Promise<void> {
    const key = backupKey(record.id);
    await this.store.put(key, sealJson(this.keys, key, record), { signal });
    this.records.set(record.id, record);
  }

  async getBackup(id: string, signal?: AbortSignal): Promise<BackupRecord> {
    const cached = this.records.get(id);
    if (cached !== undefined) return cached;
    const key = backupKey(id);
    let sealed: Buffer;
    try {
      sealed = await this.store.get(key, { signal });
    } catch (err: unknown) {
      if (isFerryError(err, 'NOT_FOUND')) {
        throw new FerryError('NOT_FOUND', `backup ${id} not found in ${this.store.location}`, { cause: err });
      }
      throw err;
    }
    const record = openJson<BackupRecord>(this.keys, key, sealed);
    if (record.id !== id) throw new FerryError('DATA_CORRUPTION', `backup record ${key} names another backup`);
    this.records.set(id, record);
    return record;
  }

  /** Every committed backup whose record opens, oldest first: reads only the small records, never data. */
  async listBackups(signal?: AbortSignal): Promise<BackupRecord[]> {
    return (await this.scanBackups(signal)).records;
  }

  /**
   * Every committed backup, oldest first, and apart the records that do not open (altered, truncated, naming another
   * backup), each with the reason: one damaged record hides only its own backup. A record that cannot be read for
   * another reason (the store is unreachable) still fails the call.
   */
  async scanBackups(signal?: AbortSignal): Promise<{ records: BackupRecord[]; damaged: DamagedBackup[] }> {
    const records: BackupRecord[] = [];
    const damaged: DamagedBackup[] = [];
    let token: string | undefined;
    do {
      const page = await this.store.list('backups/', { continuationToken: token, signal });
      for (const o of page.objects) {
        const id = o.key.slice('backups/'.length);
        try {
          records.push(await this.getBackup(id, signal));
        } catch (err: unknown) {
          // Deleted since the listing: no longer a backup.
          if (isFerryError(err, 'NOT_FOUND')) continue;
          if (!isFerryError(err, 'DATA_CORRUPTION')) throw err;
          damaged.push({ id, object: o.key, reason: err.message });
        }
      }
      token = page.continuationToken;
    } while (token !== undefined);
    records.sort((a, b) => a.id.localeCompare(b.id));
    return { records, damaged };
  }

  /**
   * Removes a backup's record (its commit point): it is no longer listed; data goes at the next collection. A
   * damaged record can be removed too (that is how an operator lets collection run again).
   */
  async deleteBackupRecord(id: string, signal?: AbortSignal): Promise<void> {
    const key = backupKey(id);
    if ((await this.store.head(key, { signal })) === undefined) {
      throw new FerryError('NOT_FOUND', `backup ${id} not found in ${this.store.location}`);
    }
    await this.store.delete([key], { signal });
    this.records.delete(id);
  }

  /**
   * The repository's write path for one backup: packs sealed and uploaded by a bounded set of uploads, index
   * checkpoints, and the backup's `running/` marker (see pack-writer.ts).
   */
  packWriter(options: PackWriterOptions): PackWriter {
    return new PackWriter(this, options);
  }

  /** Stores a finished pack object. */
  async putPack(packId: string, body: Buffer, signal?: AbortSignal): Promise<void> {
    await this.store.put(packKey(packId), body, { signal });
  }

  /** Whether pack `packId`'s object exists (one HEAD). */
  async packExists(packId: string, signal?: AbortSignal): Promise<boolean> {
    return (await this.store.head(packKey(packId), { signal })) !== undefined;
  }

  /** The ids of every pack in the store (one listing of `packs/`). */
  async packIds(signal?: AbortSignal): Promise<Set<string>> {
    const ids = new Set<string>();
    for await (const key of this.keysUnder('packs/', signal)) ids.add(key.slice(key.lastIndexOf('/') + 1));
    return ids;
  }

  /** A stored pack's own header, in index form (pack-header.ts): NOT_FOUND when it is gone, DATA_CORRUPTION when damaged. */
  readPackHeader(packId: string, options: { size?: number; signal?: AbortSignal } = {}): Promise<IndexedPack> {
    return readStoredPackHeader(this.store, this.keys, packId, options);
  }

  /** Deletes a pack and its condemned marker; returns the bytes it held (0 when it was gone already). */
  async deletePack(packId: string, signal?: AbortSignal): Promise<number> {
    const head = await this.store.head(packKey(packId), { signal });
    await this.store.delete([packKey(packId)], { signal });
    await this.store.delete([condemnedKey(packId)], { signal });
    return head?.size ?? 0;
  }

  /** Marks a pack condemned (garbage collection's first phase) at `time`. */
  async condemn(packId: string, time: Date, signal?: AbortSignal): Promise<void> {
    const key = condemnedKey(packId);
    await this.store.put(key, sealJson(this.keys, key, { pack: packId, time: time.toISOString() }), { signal });
  }

  /** Removes a pack's condemned marker: it is live again (or gone). */
  async reprieve(packId: string, signal?: AbortSignal): Promise<void> {
    await this.store.delete([condemnedKey(packId)], { signal });
  }

  /**
   * Replaces index objects: one new object per group of pack ids (their entries read from the index's disk copy;
   * packs the index dropped are left out) is written first, then `oldKeys` are deleted.
   */
  async replaceIndexObjects(
    groups: readonly string[][],
    oldKeys: readonly string[],
    signal?: AbortSignal,
  ): Promise<void> {
    for (const ids of groups) {
      const key = indexKey(randomBytes(16).toString('hex'));
      await this.store.put(key, sealObject(this.keys, key, encodeIndex(this.indexedPacks(ids))), { signal });
      this.index.loaded.set(key, [...ids]);
    }
    await this.store.delete([...oldKeys], { signal });
    for (const key of oldKeys) this.index.loaded.delete(key);
  }

  /** The index entries of packs the index knows, read back from its on-disk copy. */
  private indexedPacks(packIds: readonly string[]): IndexedPack[] {
    const out: IndexedPack[] = [];
    for (const id of packIds) {
      const pack = this.index.pack(id);
      if (pack !== undefined) out.push(pack);
    }
    return out;
  }

  /** Seals `value` as JSON under `key` (running markers, condemned markers). */
  async putSealedJson(key: string, value: unknown, signal?: AbortSignal): Promise<void> {
    await this.store.put(key, sealJson(this.keys, key, value), { signal });
  }

  /** Opens the sealed JSON at `key`; undefined when it is gone. DATA_CORRUPTION when it does not open. */
  async getSealedJson<T>(key: string, signal?: AbortSignal): Promise<T | undefined> {
    const sealed = await this.getIfPresent(key, signal);
    return sealed === undefined ? undefined : openJson<T>(this.keys, key, sealed);
  }

  /** Deletes objects by key (missing ones are fine). */
  async deleteObjects(keys: readonly string[], signal?: AbortSignal): Promise<void> {
    await this.store.delete([...keys], { signal });
  }

  /** An object's size and time, or undefined when it does not exist. */
  headObject(key: string, signal?: AbortSignal): Promise<ObjectInfo | undefined> {
    return this.store.head(key, { signal });
  }

  /**
   * An object's bytes as the store holds them now (verify reads through this, never through caches). NOT_FOUND and
   * INVALID_ARGUMENT (a range past the end) pass through.
   */
  getObject(key: string, options: GetOptions = {}): Promise<Buffer> {
    return this.store.get(key, options);
  }

  /** Every object under a prefix with its size, page by page. */
  async *objectsUnder(prefix: string, signal?: AbortSignal): AsyncGenerator<ObjectInfo> {
    let token: string | undefined;
    do {
      const page = await this.store.list(prefix, { continuationToken: token, signal });
      for (const o of page.objects) yield o;
      token = page.continuationToken;
    } while (token !== undefined);
  }
}
