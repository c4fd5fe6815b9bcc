import { decodeLeaf, decodeRoot } from './repo/manifest.js';
import type { Repository } from './repo/repository.js';

/** Every chunk id (hex) the committed backups name: what garbage collection must keep. */
export async function liveChunks(repo: Repository, signal?: AbortSignal): Promise<Set<string>> {
  const live = new Set<string>();
  const seenPages = new Set<string>();
  for (const record of await repo.listBackups(signal)) {
    const root = decodeRoot(await repo.getPage(Buffer.from(record.root, 'hex'), signal), `root of backup ${record.id}`);
    for (const [n, pageId] of root.leaves) {
      const hex = pageId.toString('hex');
      if (seenPages.has(hex)) continue;
      seenPages.add(hex);
      const leaf = decodeLeaf(await repo.getPage(pageId, signal), `leaf ${n} of backup ${record.id}`);
      for (const id of leaf.values()) live.add(id.toString('hex'));
    }
  }
  return live;
}
