/** How `ferry volume inspect` and `volume list -o wide` show replicas: their nodes, states, fill progress, attach. */
import { describe, expect, it } from 'vitest';
import type { InspectView } from '../api/index.js';
import { ApiError } from './client.js';
import { describeVolume, inFlagWords, localityTable, replicaText, volumeTable } from './commands/volume.js';
import { isSnapshotView } from './snapshot-view.js';

function view(volume: Partial<InspectView['volume']>): InspectView {
  return {
    name: 'db',
    labels: {},
    volume: {
      id: 'v1',
      readonly: false,
      locator: { name: 'db', volume_labels: {} },
      ctime: '2026-01-01T00:00:00Z',
      spec: { size: 1024 ** 3, ha_level: 2, shared: false, encrypted: false },
      usage: 0,
      status: 'VOLUME_STATUS_UP',
      state: 'VOLUME_STATE_ATTACHED',
      snapshot_count: 0,
      attached: true,
      bytes_used: 0,
      bytes_used_total: 0,
      export_name: 'db',
      ...volume,
    },
  };
}

describe('replicas in the CLI', () => {
  it('prints each replica with its state and a filling one with its progress, and where it is attached', () => {
    const text = describeVolume(
      view({
        replica_sets: [{ nodes: ['n1', 'n2'] }],
        replicas: [
          { node_id: 'n1', state: 'in-sync' },
          {
            node_id: 'n2',
            state: 'filling',
            resync: { kind: 'fill', copied_bytes: 300 * 1024 ** 2, total_bytes: 1024 ** 3 },
          },
        ],
        attached_on: 'n1',
      }),
    );
    expect(text).toMatch(/^HA\s+:\s+2$/m);
    expect(text).toMatch(/^Replica\s+:\s+n1 {2}in-sync$/m);
    expect(text).toMatch(/^Replica\s+:\s+n2 {2}filling 300 MiB of 1 GiB \(29%\)$/m);
    expect(text).toMatch(/^Attached on\s+:\s+node n1$/m);
    // A node's own attach for a resync (nobody else has the volume attached) says so.
    const resyncing = describeVolume(
      view({ state: 'VOLUME_STATE_AVAILABLE', attached: false, attached_on: 'n1', attached_for: 'resync' }),
    );
    expect(resyncing).toMatch(/^Resyncing on\s+:\s+node n1 \(attached there for the copy only; attach it anywhere\)$/m);
    expect(resyncing).not.toMatch(/^Attached on/m);
  });

  it('falls back to replica_sets (a server without per-replica states), and says a resync', () => {
    expect(describeVolume(view({ replica_sets: [{ nodes: ['n1'] }] }))).toMatch(/^Replica\s+:\s+n1 {2}in-sync$/m);
    expect(
      replicaText({ node_id: 'n3', state: 'filling', resync: { kind: 'dirty', copied_bytes: 0, total_bytes: 0 } }),
    ).toBe('filling, resyncing 0 B of 0 B (100%)');
  });

  it('says when and why a replica left, and the rate and ETA of a resync', () => {
    expect(
      replicaText({
        node_id: 'n3',
        state: 'out-of-sync',
        since: '2026-12-06T10:00:00Z',
        reason: 'node n3 unreachable',
        resync: { kind: 'dirty', copied_bytes: 0, total_bytes: 0 },
      }),
    ).toBe('out-of-sync since 2026-12-06T10:00:00Z (node n3 unreachable)');
    expect(
      replicaText({
        node_id: 'n3',
        state: 'filling',
        resync: {
          kind: 'dirty',
          copied_bytes: 256 * 1024 ** 2,
          total_bytes: 1024 ** 3,
          bytes_per_second: 64 * 1024 ** 2,
          eta_seconds: 125,
        },
      }),
    ).toBe('filling, resyncing 256 MiB of 1 GiB (25%), 64 MiB/s, ETA 2m05s');
  });

  it('shows a degraded volume as degraded', () => {
    expect(describeVolume(view({ status: 'VOLUME_STATUS_DEGRADED' }))).toMatch(/^Status\s+:\s+degraded - attached$/m);
  });

  it('lists replicas in the wide table, naming the state of those not in sync', () => {
    const table = volumeTable(
      [
        view({
          replicas: [
            { node_id: 'n1', state: 'in-sync' },
            { node_id: 'n2', state: 'filling' },
          ],
        }),
      ],
      true,
    );
    expect(table.split('\n')[1]).toMatch(/\sn1,n2\(filling\)\s+-$/);
  });

  it('names flags instead of request fields in errors, items of a list included', () => {
    const err = inFlagWords(
      new ApiError('INVALID_ARGUMENT', 'spec.replica_set.nodes.1: must be a node id', 400, 'spec.replica_set.nodes.1'),
    );
    expect((err as Error).message).toBe('--nodes: must be a node id');
    const rule = inFlagWords(
      new ApiError('FAILED_PRECONDITION', 'spec.ha_level 2 with spec.racks [r1]: one replica per rack, 1 rack', 412),
    );
    expect((rule as Error).message).toBe('--repl 2 with --racks [r1]: one replica per rack, 1 rack');
    const other = new ApiError('NOT_FOUND', 'volume "x" not found', 404);
    expect(inFlagWords(other)).toBe(other);
  });

  it('tables the locality ranking', () => {
    const text = localityTable({
      volume_id: 'v1',
      nodes: [
        { node_id: 'n1', hostname: 'h1', score: 100, reason: 'replica', rack: 'r1' },
        { node_id: 'n2', hostname: 'h2', score: 0, reason: 'other' },
      ],
    });
    expect(text.split('\n')).toEqual([
      'NODE  HOSTNAME  SCORE  REASON   RACK  ZONE',
      'n1    h1        100    replica  r1    -',
      'n2    h2        0      other    -     -',
    ]);
    expect(localityTable({ volume_id: 'v1', nodes: [] })).toBe('no online nodes');
  });
});

describe('a migrated volume in the CLI', () => {
  it('is a volume (read-only, where it went), not a snapshot', () => {
    const migrated = view({ readonly: true, migrated_to: 'dc2/db', snapshot_count: 2, attached: false });
    const text = describeVolume(migrated);
    expect(text).toMatch(/^Volume\s+:\s+v1$/m);
    expect(text).toMatch(/^Snapshots\s+:\s+2$/m);
    expect(text).toMatch(/^Migrated to\s+:\s+dc2\/db \(read-only here; use it there\)$/m);
    expect(isSnapshotView(migrated)).toBe(false);
    expect(isSnapshotView(view({ readonly: true, export_name: 'db@s1' }))).toBe(true);
    expect(describeVolume(view({ cutover: true }))).toMatch(/^Cutover\s+:/m);
  });
});
