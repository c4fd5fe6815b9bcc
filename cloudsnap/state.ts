/** What the node remembers of each volume's last successful backup to a repository (in its cluster store). */
export interface LastBackup {
  backup_id: string;
  /** The snapshot the next incremental backup diffs against; released when that backup commits. */
  snapshot_id: string;
}

export function lastBackupKey(repositoryId: string, volumeId: string): string {
  return `/ferry/cloudsnap/last/${repositoryId}/${volumeId}`;
}
