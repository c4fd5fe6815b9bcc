/** `ferry volume snapshot create|list|delete|restore`. */

import type { Command } from 'commander';
import type { InspectView } from '../../api/index.js';
import { ApiError, type FerryClient } from '../client.js';
import { clientFor, output } from '../context.js';
import { formatLabels, formatSize, parseLabel, renderTable } from '../format.js';
import { isSnapshotView } from '../snapshot-view.js';

/**
 * Finds a snapshot's id from its id, `VOLUME@SNAPSHOT`, or its name among `volume`'s snapshots. NOT_FOUND (as an
 * ApiError) when there is no such snapshot.
 */
export async function resolveSnapshotId(client: FerryClient, volume: string, ref: string): Promise<string> {
  try {
    const view = await client.inspect(ref);
    if (isSnapshotView(view)) return view.volume.id;
  } catch (err: unknown) {
    if (!(err instanceof ApiError && err.code === 'NOT_FOUND') || ref.includes('@')) throw err;
  }
  const view = await client.inspect(`${volume}@${ref}`);
  return view.volume.id;
}

function snapshotTable(views: readonly InspectView[]): string {
  if (views.length === 0) return 'no snapshots';
  const rows = views.map((view) => [
    view.volume.id,
    view.volume.locator.name,
    view.volume.export_name,
    formatSize(view.volume.spec.size),
    view.volume.ctime,
    formatLabels(view.volume.locator.volume_labels),
  ]);
  return renderTable(['ID', 'NAME', 'EXPORT', 'SIZE', 'CREATED', 'LABELS'], rows);
}

/** Adds `snapshot` and its subcommands to the `volume` command. */
export function registerSnapshotCommands(volume: Command): void {
  const snapshot = volume.command('snapshot').description('manage read-only point-in-time snapshots of a volume');

  snapshot
    .command('create')
    .description('take a snapshot of a volume')
    .argument('<volume>', 'volume id or name')
    .requiredOption('--name <name>', 'snapshot name, unique among the volume snapshots')
    .option('--label <key=value>', 'label to set (repeatable)', parseLabel)
    .action(async (ref: string, options: { name: string; label?: Record<string, string> }, command: Command) => {
      const response = await clientFor(command).createSnapshot({
        volume_id: ref,
        name: options.name,
        ...(options.label !== undefined && { labels: options.label }),
      });
      output(command, response, () => `Volume snap successful: ${response.snapshot_id}`);
    });

  snapshot
    .command('list')
    .description("list a volume's snapshots (--json prints { volumes: [inspect responses] })")
    .argument('<volume>', 'volume id or name')
    .action(async (ref: string, _options: object, command: Command) => {
      const client = clientFor(command);
      const { volume_snapshot_ids: ids } = await client.enumerateSnapshots(ref);
      const volumes = await Promise.all(ids.map((id) => client.inspect(id)));
      output(command, { volumes }, () => snapshotTable(volumes));
    });

  snapshot
    .command('delete')
    .description('delete a snapshot (clones made from it keep working)')
    .argument('<snapshot>', 'snapshot id or VOLUME@SNAPSHOT')
    .action(async (ref: string, _options: object, command: Command) => {
      const client = clientFor(command);
      const view = await client.inspect(ref);
      if (!isSnapshotView(view)) {
        throw new ApiError('INVALID_ARGUMENT', `"${ref}" is a volume, not a snapshot; use \`ferry volume delete\``, 0);
      }
      const response = await client.delete(view.volume.id);
      output(command, response, () => `Snapshot ${view.volume.export_name} successfully deleted`);
    });

  snapshot
    .command('restore')
    .description('make a volume equal to one of its snapshots (refused while the volume is attached)')
    .argument('<volume>', 'volume id or name')
    .requiredOption('--snapshot <snapshot>', 'snapshot id, name, or VOLUME@SNAPSHOT')
    .action(async (ref: string, options: { snapshot: string }, command: Command) => {
      const client = clientFor(command);
      const snapshotId = await resolveSnapshotId(client, ref, options.snapshot);
      const response = await client.restoreSnapshot({ volume_id: ref, snapshot_id: snapshotId });
      output(command, response, () => `Volume ${ref} restored from snapshot ${options.snapshot}`);
    });
}
