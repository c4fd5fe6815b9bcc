/** Whether an inspect answer is a snapshot's (read-only, not a volume that was migrated away and is read-only too). */
import type { InspectView } from '../api/index.js';

export function isSnapshotView(view: InspectView): boolean {
  return view.volume.readonly && view.volume.migrated_to === undefined;
}
