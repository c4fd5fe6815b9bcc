/** The ownership refs of the resources routes handle: a snapshot is checked as its volume. */
import type { SnapshotInfo, VolumeInfo } from '../../node/index.js';
import type { Resolved } from '../resolve.js';
import type { ResourceRef } from './ownership.js';

/** A volume's ref. */
export function volumeRef(volume: Pick<VolumeInfo, 'id' | 'name'>): ResourceRef {
  return { kind: 'volume', id: volume.id, name: volume.name };
}

/** A snapshot's ref: its volume's (snapshots inherit their volume's ownership). */
export function snapshotRef(snapshot: Pick<SnapshotInfo, 'volume_id' | 'volume_name'>): ResourceRef {
  return { kind: 'volume', id: snapshot.volume_id, name: snapshot.volume_name };
}

/** The ref of what a path named (a volume, or a snapshot as its volume). */
export function resolvedRef(found: Resolved): ResourceRef {
  return found.kind === 'volume' ? volumeRef(found.volume) : snapshotRef(found.snapshot);
}

/** A credential's ref. */
export function credentialRef(credential: { credential_id: string; name?: string }): ResourceRef {
  return {
    kind: 'credential',
    id: credential.credential_id,
    ...(credential.name !== undefined && { name: credential.name }),
  };
}

/** A backup or restore task's ref. */
export function taskRef(taskId: string): ResourceRef {
  return { kind: 'task', id: taskId };
}
