/**
 * The layer trees a node holds on its disks, under keys of that node in the cluster store:
 *
 *   /ferry/local/<node id>/layers/<layer id>   LayerRecord: id, parent (or null), frozen
 *   /ferry/local/<node id>/abandoned/<layer id>  a staged snapshot head this node gave up (S4): a coordinator's commit
 *                                               of it compares that the key is absent
 *
 * A node loads and collects only the layers under its own prefix. (`/ferry/nodes/<id>` is the node's membership
 * record, so the per-node data lives under `/ferry/local/` where listing `/ferry/nodes/` never meets it.)
 *
 * Version 1 of the layout kept every layer under `/ferry/layers/<id>`; `upgradeLayout` moves them here.
 */
import type { ClusterStore, Compare, StoreOp } from '../cluster/types.js';
import { catalogKeys, put, type VolumeNameRecord } from './catalog.js';
import type { LayerRecord } from './layer.js';
import type { VolumeRecord } from './records.js';

/** The tombstone of node `nodeId`'s staged snapshot head `layerId`, given up after its commit did not arrive (S4). */
export function abandonedHeadKey(nodeId: string, layerId: string): string {
  return `/ferry/local/${nodeId}/abandoned/${layerId}`;
}

/** What a snapshot's commit transaction compares for a replica on `nodeId` that staged head `layerId` (S4). */
export function headNotAbandoned(nodeId: string, layerId: string): Compare {
  return { key: abandonedHeadKey(nodeId, layerId), modRevision: 0 };
}

/**
 * Settles a snapshot head this node staged and whose commit or abandon never arrived (the coordinator's connection
 * ended, S4): true when the coordinator's transaction committed it (its layer record is in the store); false once a
 * tombstone makes sure it never will (that transaction compares the tombstone's absence). Rejects when the store
 * cannot say (unreachable).
 */
export async function settleLostHead(store: ClusterStore, local: LocalLayerKeys, layerId: string): Promise<boolean> {
  const tombstone = local.abandoned(layerId);
  const result = await store.txn(
    [
      { key: tombstone, modRevision: 0 },
      { key: local.layer(layerId), modRevision: 0 },
    ],
    [{ op: 'put', key: tombstone, value: { layer: layerId, at: new Date().toISOString() } }],
  );
  if (result.succeeded) return false;
  return (await store.getEntry(local.layer(layerId))) !== undefined;
}

/** Where version 1 kept every layer of the (single) node. */
export const LEGACY_LAYERS = '/ferry/layers/';

/** The keys of one node's layers. */
export class LocalLayerKeys {
  /** Prefix of the node's layer records. */
  readonly layers: string;

  constructor(readonly nodeId: string) {
    this.layers = `/ferry/local/${nodeId}/layers/`;
  }

  layer(id: string): string {
    return `${this.layers}${id}`;
  }

  /** The tombstone of a staged head given up (S4). */
  abandoned(id: string): string {
    return abandonedHeadKey(this.nodeId, id);
  }

  /** Prefix of the tombstones. */
  get abandonedPrefix(): string {
    return abandonedHeadKey(this.nodeId, '');
  }

  put(record: LayerRecord): StoreOp {
    return { op: 'put', key: this.layer(record.id), value: record };
  }

  del(id: string): StoreOp {
    return { op: 'delete', key: this.layer(id) };
  }
}

/**
 * Opens a store written with layout version 1 (layers under `/ferry/layers/`, volumes without `replicas` or name
 * keys) as this node's: in one commit, moves every legacy layer record under the node's prefix, records the node as
 * the holder of every volume that names no holder and whose top layer is one of them, and writes the name key of
 * every volume that has none. A store with no legacy layer is left as is (and not read further).
 * Version 1 had a single node per store, so the node that opens its data directory is the one that held them.
 * Returns how many layer records moved.
 */
export async function upgradeLayout(store: ClusterStore, local: LocalLayerKeys): Promise<number> {
  const legacy = await store.list<LayerRecord>(LEGACY_LAYERS);
  // Every volume of a version-1 store has a legacy top layer, and the upgrade is one commit: no legacy layer left
  // means nothing to upgrade, so a start pays one empty list, not a pass over the cluster's volumes and names.
  if (legacy.length === 0) return 0;
  const mine = new Set(legacy.map((kv) => kv.value.id));
  for (const kv of await store.list<LayerRecord>(local.layers)) mine.add(kv.value.id);
  const ops: StoreOp[] = [];
  for (const { key, value } of legacy) ops.push({ op: 'delete', key }, local.put(value));
  const named = new Set((await store.list<VolumeNameRecord>(catalogKeys.names)).map((kv) => kv.value.id));
  for (const { value } of await store.list<VolumeRecord>(catalogKeys.volumes)) {
    if (value.replicas === undefined && mine.has(value.top)) {
      ops.push(put.volume({ ...value, replicas: [{ node_id: local.nodeId }] }));
    }
    if (!named.has(value.id)) ops.push(put.name(value));
  }
  if (ops.length > 0) await store.commit(ops);
  return legacy.length;
}
