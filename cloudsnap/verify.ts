import zstd from 'zstd-napi/binding.js';
import { isFerryError } from '../common/errors.js';
import { decodeChunkInto } from './repo/chunk-codec.js';
import { packKey } from './repo/layout.js';
import { decodeLeaf, decodeRoot } from './repo/manifest.js';
import type { BackupRecord, Repository } from './repo/repository.js';

export interface VerifyOptions {
  /** Backups to check; default all. */
  backupIds?: string[];
  /** Also read, authenticate, decompress and re-hash chunks: this percentage of them (0-100); default 0. */
  dataPercent?: number;
  signal?: AbortSignal;
}

export interface VerifyProblem {
  backup: string;
  object: string;
  message: string;
}

export interface VerifyResult {
  backups: number;
  pages: number;
  chunks: number;
  chunks_read: number;
  problems: VerifyProblem[];
}

/**
 * Checks backups: every record and manifest page opens and matches its id, every chunk is indexed in a pack that
 * exists and is long enough, and (for `dataPercent` of the chunks, chosen at random) the chunk itself decrypts,
 * decompresses and hashes to its id. Problems are collected, each naming the backup and the object.
 */
export async function verifyBackups(repo: Repository, options: VerifyOptions = {}): Promise<VerifyResult> {
  const signal = options.signal;
  const share = Math.max(0, Math.min(100, options.dataPercent ?? 0)) / 100;
  const result: VerifyResult = { backups: 0, pages: 0, chunks: 0, chunks_read: 0, problems: [] };
  const dctx = new zstd.DCtx();
  await repo.refreshIndex(signal);
  const packSizes = new Map<string, number | undefined>();
  const records: BackupRecord[] =
    options.backupIds === undefined
      ? await repo.listBackups(signal)
      : await Promise.all(options.backupIds.map((id) => repo.getBackup(id, signal)));
  for (const record of records) {
    result.backups++;
    const problem = (object: string, message: string): void => {
      result.problems.push({ backup: record.id, object, message });
    };
    try {
      const root = decodeRoot(
        await repo.getPage(Buffer.from(record.root, 'hex'), signal),
        `root of backup ${record.id}`,
      );
      result.pages++;
      // The restore's decoder, into one chunk's room, with room for the largest blob seen as scratch.
      const out = Buffer.allocUnsafe(root.chunkSize);
      let scratch = Buffer.alloc(0);
      for (const [n, pageId] of root.leaves) {
        signal?.throwIfAborted();
        const leaf = decodeLeaf(await repo.getPage(pageId, signal), `leaf ${n} of backup ${record.id}`);
        result.pages++;
        for (const id of leaf.values()) {
          result.chunks++;
          const loc = repo.index.get(id);
          const chunkName = `chunk ${id.toString('hex')}`;
          if (loc === undefined) {
            problem(chunkName, 'no pack holds this chunk');
            continue;
          }
          const key = packKey(loc.pack.id);
          if (!packSizes.has(loc.pack.id)) packSizes.set(loc.pack.id, (await repo.store.head(key, { signal }))?.size);
          const size = packSizes.get(loc.pack.id);
          if (size === undefined) {
            problem(key, `pack is missing (it holds ${chunkName})`);
            continue;
          }
          if (loc.offset + loc.length > size) {
            problem(key, `pack is truncated: ${size} bytes, ${chunkName} ends at ${loc.offset + loc.length}`);
            continue;
          }
          if (share > 0 && Math.random() < share) {
            try {
              const body = await repo.store.get(key, { signal, range: { offset: loc.offset, length: loc.length } });
              if (scratch.length < body.length) scratch = Buffer.allocUnsafe(body.length);
              decodeChunkInto(
                repo.keys,
                dctx,
                repo.keys.objectKey(loc.pack.salt),
                loc.nonce,
                id,
                body,
                () => `${chunkName} in ${key}`,
                out,
                scratch,
              );
            } catch (err: unknown) {
              if (!isFerryError(err, 'DATA_CORRUPTION')) throw err;
              problem(key, err.message);
            }
            result.chunks_read++;
          }
        }
      }
    } catch (err: unknown) {
      if (!isFerryError(err, 'DATA_CORRUPTION') && !isFerryError(err, 'NOT_FOUND')) throw err;
      problem(`backup ${record.id}`, err.message);
    }
  }
  return result;
}
