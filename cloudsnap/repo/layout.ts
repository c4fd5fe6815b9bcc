/** Object keys of a repository (see docs/FORMAT.md). */
export const CONFIG_KEY = 'config';

export function packKey(packId: string): string {
  return `packs/${packId.slice(0, 2)}/${packId}`;
}

export function indexKey(indexId: string): string {
  return `index/${indexId}`;
}

export function pageKey(pageId: string): string {
  return `manifests/${pageId.slice(0, 2)}/${pageId}`;
}

export function backupKey(backupId: string): string {
  return `backups/${backupId}`;
}

export function runningKey(backupId: string): string {
  return `running/${backupId}`;
}

export function condemnedKey(packId: string): string {
  return `condemned/${packId}`;
}

/** A backup id sorts by creation time: 20261128T101500.123Z-<8 hex>. */
export function newBackupId(now: Date, random: string): string {
  return `${now.toISOString().replace(/[-:]/g, '')}-${random}`;
}
