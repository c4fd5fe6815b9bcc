/** `ferry volume create|list|inspect|delete|resize|clone|diff` (pxctl-like), and the `snapshot` group below it. */

import { type Command, Option } from 'commander';
import type { InspectView, LocalityResponse, ReplicaView } from '../../api/index.js';
import { BACKUP_SNAPSHOT_LABEL, type Extent } from '../../node/index.js';
import { ApiError, type FerryClient } from '../client.js';
import { confirm } from '../confirm.js';
import { clientFor, output } from '../context.js';
import {
  formatLabels,
  formatSize,
  parseLabel,
  parseList,
  parseVolumeSize,
  parseWholeNumber,
  renderTable,
} from '../format.js';
import { isSnapshotView } from '../snapshot-view.js';
import { parseBandwidth } from './cluster.js';
import { registerSnapshotCommands, resolveSnapshotId } from './snapshot.js';

interface CreateOptions {
  size: number;
  repl?: number;
  /** The old name of --repl, still accepted. */
  haLevel?: number;
  nodes?: string[];
  racks?: string[];
  zones?: string[];
  label?: Record<string, string>;
  shared?: boolean;
  encrypted?: boolean;
  kek?: string;
  keyProvider?: string;
}

/** ", with its schedules S1, S2" after a delete that took schedules along; else nothing. */
export function schedulesGone(response: { deleted_schedule_ids?: string[] }): string {
  const ids = response.deleted_schedule_ids ?? [];
  if (ids.length === 0) return '';
  return `, with its cloud backup ${ids.length === 1 ? 'schedule' : 'schedules'} ${ids.join(', ')}`;
}

function statusText(view: InspectView): string {
  const { status, state } = view.volume;
  if (state === 'VOLUME_STATE_RESTORE') return 'restoring';
  const health = status === 'VOLUME_STATUS_UP' ? 'up' : status === 'VOLUME_STATUS_DEGRADED' ? 'degraded' : 'down';
  if (view.volume.error !== undefined) return `${health} - ${view.volume.error}`;
  return `${health} - ${state === 'VOLUME_STATE_ATTACHED' ? 'attached' : 'detached'}`;
}

function encryptionText(v: InspectView['volume']): string {
  if (v.spec.encrypted !== true) return 'no';
  if (v.encryption === undefined) return 'yes';
  return `yes (AES-256-XTS, KEK ${v.encryption.kek} of ${v.encryption.key_provider})`;
}

/** `2m05s`, `1h02m`, `40s`: an ETA for people. */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/**
 * A replica's state in words: `in-sync`; `filling 12 MiB of 40 MiB (30%), 80 MiB/s, ETA 2m05s`; `out-of-sync since
 * T (why)` while it waits to come back.
 */
export function replicaText(replica: ReplicaView): string {
  const resync = replica.resync;
  const left =
    replica.since === undefined ? '' : ` since ${replica.since}${replica.reason ? ` (${replica.reason})` : ''}`;
  if (resync === undefined || (replica.state === 'out-of-sync' && resync.copied_bytes === 0)) {
    return replica.state === 'in-sync' ? replica.state : `${replica.state}${left}`;
  }
  const percent = resync.total_bytes === 0 ? 100 : Math.floor((resync.copied_bytes / resync.total_bytes) * 100);
  const what = resync.kind === 'fill' ? replica.state : `${replica.state}, resyncing`;
  let text = `${what} ${formatSize(resync.copied_bytes)} of ${formatSize(resync.total_bytes)} (${percent}%)`;
  if (resync.bytes_per_second !== undefined) text += `, ${formatSize(resync.bytes_per_second)}/s`;
  if (resync.eta_seconds !== undefined) text += `, ETA ${formatDuration(resync.eta_seconds)}`;
  return text;
}

/** The nodes holding a volume's replicas, `a,b(filling)`; `-` when the view names none. */
function replicasCell(v: InspectView['volume']): string {
  const replicas = v.replicas ?? v.replica_sets?.[0]?.nodes.map((node_id) => ({ node_id, state: 'in-sync' }));
  if (replicas === undefined || replicas.length === 0) return '-';
  return replicas.map((r) => (r.state === 'in-sync' ? r.node_id : `${r.node_id}(${r.state})`)).join(',');
}

/** One line per field, like `pxctl volume inspect`. */
export function describeVolume(view: InspectView): string {
  const v = view.volume;
  const snapshot = isSnapshotView(view);
  const rows: [string, string][] = [
    [snapshot ? 'Snapshot' : 'Volume', v.id],
    ['Name', v.locator.name],
    ['Size', `${formatSize(v.spec.size)} (${v.spec.size} bytes)`],
    ['HA', String(v.spec.ha_level)],
    ['Shared', v.spec.shared ? 'yes' : 'no'],
    ['Encrypted', encryptionText(v)],
    ['Labels', formatLabels(v.locator.volume_labels)],
    ['Status', statusText(view)],
    ['Created', v.ctime],
    ['Export', v.export_name],
  ];
  if (!snapshot) rows.push(['Snapshots', String(v.snapshot_count)], ['Bytes used', formatSize(v.bytes_used)]);
  if (v.migrated_to !== undefined) rows.push(['Migrated to', `${v.migrated_to} (read-only here; use it there)`]);
  if (v.cutover === true) rows.push(['Cutover', 'a migration holds its writes for a few seconds']);
  const replicas = v.replicas ?? v.replica_sets?.[0]?.nodes.map((node_id) => ({ node_id, state: 'in-sync' as const }));
  for (const replica of replicas ?? []) rows.push(['Replica', `${replica.node_id}  ${replicaText(replica)}`]);
  if (v.attached_on !== undefined && v.attached_for === 'resync') {
    rows.push(['Resyncing on', `node ${v.attached_on} (attached there for the copy only; attach it anywhere)`]);
  } else if (v.attached_on !== undefined) rows.push(['Attached on', `node ${v.attached_on}`]);
  for (const holder of v.attached_by ?? []) rows.push(['Attached by', `${holder.client} since ${holder.since}`]);
  if (v.open_problem !== undefined) rows.push(['Cannot open', v.open_problem]);
  if (v.source !== undefined) rows.push([snapshot ? 'Volume' : 'Parent snapshot', v.source.parent]);
  const width = Math.max(...rows.map(([key]) => key.length));
  return rows.map(([key, value]) => `${key.padEnd(width)}  :  ${value}`).join('\n');
}

/**
 * Table of volumes: ID NAME SIZE USED HA SNAPSHOTS STATUS (USED: data the volume holds with its snapshots); `wide` adds
 * ENCRYPTED, CREATED, REPLICAS (nodes; a replica not in sync with its state) and LABELS. `no volumes` when there
 * are none.
 */
export function volumeTable(views: readonly InspectView[], wide = false): string {
  if (views.length === 0) return 'no volumes';
  const rows = views.map((view) => {
    const v = view.volume;
    const row = [
      v.id,
      v.locator.name,
      formatSize(v.spec.size),
      // A node older than bytes_used_total answers without it.
      formatSize((v.bytes_used_total as number | undefined) ?? v.bytes_used),
      String(v.spec.ha_level),
      String(v.snapshot_count),
      statusText(view),
    ];
    if (wide) {
      row.push(
        v.spec.encrypted === true ? 'yes' : 'no',
        v.ctime,
        replicasCell(v),
        formatLabels(v.locator.volume_labels),
      );
    }
    return row;
  });
  const header = ['ID', 'NAME', 'SIZE', 'USED', 'HA', 'SNAPSHOTS', 'STATUS'];
  return renderTable(wide ? [...header, 'ENCRYPTED', 'CREATED', 'REPLICAS', 'LABELS'] : header, rows);
}

/** Request fields -> the flags that set them, for messages about a field. */
const FLAG_OF_FIELD: Readonly<Record<string, string>> = {
  'spec.size': '--size',
  'spec.ha_level': '--repl',
  'spec.replica_set.nodes': '--nodes',
  'spec.replica_set': '--node',
  'spec.racks': '--racks',
  'spec.zones': '--zones',
};

/**
 * `err` in CLI words: the request fields a message names (`spec.ha_level: must be at most 3`, `spec.racks r1 ...`)
 * become the flags that set them (`--repl: ...`); an item of a list (`spec.replica_set.nodes.0`) is its list's flag.
 */
export function inFlagWords(err: unknown, fields: Readonly<Record<string, string>> = FLAG_OF_FIELD): unknown {
  if (!(err instanceof ApiError)) return err;
  let message = err.message;
  // Longest first, so that spec.replica_set.nodes is not read as spec.replica_set.
  for (const field of Object.keys(fields).sort((a, b) => b.length - a.length)) {
    const flag = fields[field] ?? field;
    const named = new RegExp(`(?<![\\w.])${field.replaceAll('.', '\\.')}(\\.[0-9]+)?(?![\\w.])`, 'g');
    message = message.replace(named, flag);
  }
  if (message === err.message) return err;
  return new ApiError(err.code, message, err.status, err.field, err);
}

/** The ranked nodes of `ferry volume locality` as a table. */
export function localityTable(answer: LocalityResponse): string {
  if (answer.nodes.length === 0) return 'no online nodes';
  const rows = answer.nodes.map((n) => [
    n.node_id,
    n.hostname,
    String(n.score),
    n.reason,
    n.rack ?? '-',
    n.zone ?? '-',
  ]);
  return renderTable(['NODE', 'HOSTNAME', 'SCORE', 'REASON', 'RACK', 'ZONE'], rows);
}

/** Names of the snapshots of a volume that a user took (backup snapshots, which Ferry keeps itself, are left out). */
async function userSnapshots(client: FerryClient, volumeId: string): Promise<string[]> {
  const { volume_snapshot_ids: ids } = await client.enumerateSnapshots(volumeId);
  const views = await Promise.all(ids.map((id) => client.inspect(id)));
  return views
    .filter((view) => view.volume.locator.volume_labels[BACKUP_SNAPSHOT_LABEL] === undefined)
    .map((view) => view.volume.locator.name);
}

async function collectChangedBlocks(
  client: FerryClient,
  volume: string,
  query: { base_snapshot_id?: string; target_snapshot_id?: string },
): Promise<{ extents: Extent[]; block_size: number; size: number }> {
  const extents: Extent[] = [];
  let offset: number | undefined;
  for (;;) {
    const page = await client.changedBlocks(volume, { ...query, ...(offset !== undefined && { offset }) });
    extents.push(...page.extents);
    if (page.next_offset === undefined) return { extents, block_size: page.block_size, size: page.size };
    offset = page.next_offset;
  }
}

/** What `ferry volume ha-update` prints once the change is recorded. */
function haUpdateText(ref: string, was: number, options: { repl: number; node?: string }): string {
  if (options.repl === was) return `Volume ${ref} already has ha_level ${was}`;
  const where = options.node === undefined ? '' : ` on node ${options.node}`;
  if (options.repl > was) {
    return `Volume ${ref} ha_level ${was} -> ${options.repl}: a new replica${where} fills in the background; \`ferry volume inspect ${ref}\` shows its progress`;
  }
  return `Volume ${ref} ha_level ${was} -> ${options.repl}: a replica${where} was dropped`;
}

/** Adds `volume` and its subcommands to `program`. */
export function registerVolumeCommands(program: Command): void {
  const volume = program.command('volume').description('manage volumes and their snapshots');

  volume
    .command('create')
    .description('create a volume (idempotent: the same name and size returns the existing volume)')
    .argument('<name>', 'volume name (also its NBD export name)')
    .requiredOption('--size <size>', 'size, e.g. 10G, 10GiB, 1T or bytes', parseVolumeSize)
    .option('--repl <n>', 'number of replicas, each on its own node (1-3; default 1)', parseWholeNumber)
    .addOption(new Option('--ha-level <n>', 'the old name of --repl').argParser(parseWholeNumber).hideHelp())
    .option('--nodes <ids>', 'nodes to hold the replicas, comma-separated node ids (ferry node list)', parseList)
    .option('--racks <racks>', 'only nodes labelled rack= one of these, one replica per rack', parseList)
    .option('--zones <zones>', 'only nodes labelled zone= one of these', parseList)
    .option('--label <key=value>', 'label to set (repeatable)', parseLabel)
    .option('--shared', 'allow several writers at once')
    .option('--encrypted', 'encrypt the data at rest (AES-256-XTS, a per-volume key wrapped by a KEK)')
    .option('--kek <name>', 'KEK wrapping the volume key, also used for its backups (label ferry.io/kek)')
    .option('--key-provider <name>', 'provider of --kek: local, vault or aws-kms (label ferry.io/key-provider)')
    .action(async (name: string, options: CreateOptions, command: Command) => {
      const labels: Record<string, string> = { ...options.label };
      if (options.kek !== undefined) labels['ferry.io/kek'] = options.kek;
      if (options.keyProvider !== undefined) labels['ferry.io/key-provider'] = options.keyProvider;
      const repl = options.repl ?? options.haLevel;
      const response = await clientFor(command)
        .createVolume({
          name,
          spec: {
            size: options.size,
            ...(repl !== undefined && { ha_level: repl }),
            ...(options.nodes !== undefined && { replica_set: { nodes: options.nodes } }),
            ...(options.racks !== undefined && { racks: options.racks }),
            ...(options.zones !== undefined && { zones: options.zones }),
            ...(options.shared === true && { shared: true }),
            ...(options.encrypted === true && { encrypted: true }),
          },
          ...(Object.keys(labels).length > 0 && { labels }),
        })
        .catch((err: unknown) => {
          throw inFlagWords(err);
        });
      output(command, response, () => `Volume successfully created: ${response.volume_id}`);
    });

  volume
    .command('list')
    .description('list volumes')
    .action(async (_options: object, command: Command) => {
      const response = await clientFor(command).inspectVolumes();
      output(command, response, (wide) => volumeTable(response.volumes, wide));
    });

  volume
    .command('inspect')
    .description('show a volume (or a snapshot)')
    .argument('<volume>', 'volume id or name, or snapshot id or VOLUME@SNAPSHOT')
    .action(async (ref: string, _options: object, command: Command) => {
      const view = await clientFor(command).inspect(ref);
      output(command, view, () => describeVolume(view));
    });

  volume
    .command('delete')
    .description('delete a volume and its snapshots (clones made from them keep working)')
    .argument('<volume>', 'volume id or name')
    .option('--yes', 'do not ask, even when the volume has snapshots (needed when stdin is not a terminal)')
    .option('--with-schedules', 'also delete the cloud backup schedules of the volume (else they make it refuse)')
    .action(async (ref: string, options: { yes?: boolean; withSchedules?: boolean }, command: Command) => {
      const client = clientFor(command);
      const view = await client.inspect(ref);
      if (!isSnapshotView(view) && view.volume.snapshot_count > 0 && options.yes !== true) {
        const names = await userSnapshots(client, view.volume.id);
        const name = view.volume.locator.name;
        const count = `${names.length} snapshot${names.length === 1 ? '' : 's'}`;
        if (names.length > 0) {
          await confirm({
            question: `Delete volume ${name} and its ${count} (${names.join(', ')})?`,
            what: `volume ${name} has ${count} (${names.join(', ')}), deleted with it`,
            yes: false,
          });
        }
      }
      const response = await client.delete(view.volume.id, options.withSchedules === true);
      const kind = isSnapshotView(view) ? 'Snapshot' : 'Volume';
      output(
        command,
        response,
        () => `${kind} ${view.volume.export_name} successfully deleted${schedulesGone(response)}`,
      );
    });

  volume
    .command('resize')
    .description('grow a volume (volumes cannot shrink)')
    .argument('<volume>', 'volume id or name')
    .requiredOption('--size <size>', 'new size, e.g. 20G', parseVolumeSize)
    .action(async (ref: string, options: { size: number }, command: Command) => {
      const response = await clientFor(command).updateVolume(ref, { spec: { size: options.size } });
      output(command, response, () => `Volume ${ref} resized to ${formatSize(options.size)}`);
    });

  volume
    .command('ha-update')
    .description(
      'raise or lower the number of replicas by one (a new replica fills in the background; inspect shows progress)',
    )
    .argument('<volume>', 'volume id or name')
    .requiredOption('--repl <n>', 'the new number of replicas (1-3), one more or one less than now', parseWholeNumber)
    .option('--node <id>', 'the node to add the replica on, or to drop it from (default: placement chooses)')
    .action(async (ref: string, options: { repl: number; node?: string }, command: Command) => {
      const client = clientFor(command);
      const before = await client.inspect(ref);
      const response = await client
        .updateVolume(ref, {
          spec: {
            ha_level: options.repl,
            ...(options.node !== undefined && { replica_set: { nodes: [options.node] } }),
          },
        })
        .catch((err: unknown) => {
          throw inFlagWords(err, { ...FLAG_OF_FIELD, 'spec.replica_set.nodes': '--node' });
        });
      output(command, response, () => haUpdateText(ref, before.volume.spec.ha_level, options));
    });

  volume
    .command('update')
    .description("change a volume's settings: its resync bandwidth cap")
    .argument('<volume>', 'volume id or name')
    .requiredOption(
      '--resync-bandwidth <rate>',
      "cap of the copies resyncing or filling its replicas, e.g. 50M (a second); 0: none; 'cluster': the cluster-wide one",
      // 'cluster' is -1 here (commander takes a null value for a missing option), null in the request.
      (text: string) => (text === 'cluster' ? -1 : parseBandwidth(text)),
    )
    .action(async (ref: string, options: { resyncBandwidth: number }, command: Command) => {
      const cap = options.resyncBandwidth < 0 ? null : options.resyncBandwidth;
      const response = await clientFor(command)
        .updateVolume(ref, { spec: { resync_bandwidth: cap } })
        .catch((err: unknown) => {
          throw inFlagWords(err, { ...FLAG_OF_FIELD, 'spec.resync_bandwidth': '--resync-bandwidth' });
        });
      const what = cap === null ? 'the cluster-wide cap' : cap === 0 ? 'no cap' : `${formatSize(cap)}/s`;
      output(command, response, () => `Volume ${ref} resync bandwidth: ${what}`);
    });

  volume
    .command('locality')
    .description("rank the online nodes for running the volume's user: replicas first, then same rack, then zone")
    .argument('<volume>', 'volume id or name')
    .action(async (ref: string, _options: object, command: Command) => {
      const answer = await clientFor(command).locality(ref);
      output(command, answer, () => localityTable(answer));
    });

  volume
    .command('clone')
    .description('create a writable volume from a snapshot, or from a volume as it is now')
    .argument('<parent>', 'snapshot id, VOLUME@SNAPSHOT, or volume id or name')
    .requiredOption('--name <name>', 'name of the new volume')
    .option('--label <key=value>', 'label to add to the clone (repeatable)', parseLabel)
    .action(async (parent: string, options: { name: string; label?: Record<string, string> }, command: Command) => {
      const response = await clientFor(command).cloneVolume({
        name: options.name,
        parent_id: parent,
        ...(options.label !== undefined && { additional_labels: options.label }),
      });
      output(command, response, () => `Volume clone successful: ${response.volume_id}`);
    });

  volume
    .command('diff')
    .description('list the byte ranges that changed between two snapshots (or since a snapshot, or ever written)')
    .argument('<volume>', 'volume id or name')
    .option('--base <snapshot>', 'snapshot to diff from (id, name or VOLUME@SNAPSHOT); default: empty volume')
    .option('--target <snapshot>', 'snapshot to diff to; default: the live volume')
    .action(async (ref: string, options: { base?: string; target?: string }, command: Command) => {
      const client = clientFor(command);
      const query: { base_snapshot_id?: string; target_snapshot_id?: string } = {};
      if (options.base !== undefined) query.base_snapshot_id = await resolveSnapshotId(client, ref, options.base);
      if (options.target !== undefined) query.target_snapshot_id = await resolveSnapshotId(client, ref, options.target);
      const diff = await collectChangedBlocks(client, ref, query);
      output(command, diff, () => {
        const changed = diff.extents.reduce((sum, extent) => sum + extent.length, 0);
        const rows = diff.extents.map((e) => [String(e.offset), String(e.length), formatSize(e.length)]);
        const count = diff.extents.length;
        const summary = `${count} extent${count === 1 ? '' : 's'}, ${formatSize(changed)} changed of ${formatSize(diff.size)} (block size ${formatSize(diff.block_size)})`;
        return rows.length === 0 ? summary : `${renderTable(['OFFSET', 'LENGTH', 'SIZE'], rows)}\n${summary}`;
      });
    });

  registerSnapshotCommands(volume);
}
