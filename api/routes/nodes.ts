/**
 * OpenStorageNode rpcs (libopenstorage/openstorage api/api.proto): Enumerate GET /v1/nodes (SdkNodeEnumerateResponse
 * `{ node_ids }`: every node that ever joined, Offline ones too), EnumerateWithFilters GET /v1/nodes/filters
 * (`{ nodes: StorageNode[] }`), Inspect GET /v1/nodes/inspect/{node_id} and InspectCurrent GET
 * /v1/nodes/inspectcurrent (`{ node: StorageNode }`), and Ferry's POST /v1/nodes/maintenance/{node_id}
 * (`{ maintenance: true|false }`, admins only: placement skips a node in maintenance). Status, labels, addresses and
 * capacity come from membership (node/cluster/membership.ts), the volumes and replicas held from the catalog. This
 * node adds its live CPU count, memory and load.
 */
import { cpus, freemem, loadavg, totalmem } from 'node:os';
import { Hono } from 'hono';
import { FerryError } from '../../common/index.js';
import type { MemberStatus, MemberView, NodeHoldings } from '../../node/index.js';
import { principalOf } from '../auth/context.js';
import { isAdmin } from '../auth/principal.js';
import type { ClusterDirectory } from '../cluster-directory.js';
import { addOperations, operationsWith } from '../operation.js';
import {
  type NodeStatus,
  nodeEnumerateResponseSchema,
  nodeEnumerateWithFiltersResponseSchema,
  nodeIdSchema,
  nodeInspectResponseSchema,
  nodeMaintenanceRequestSchema,
  type StorageNodeView,
} from '../schemas/index.js';
import { notANode } from './cluster.js';

function hostOf(apiUrl: string): string {
  try {
    return new URL(apiUrl).hostname.replace(/^\[(.*)\]$/, '$1');
  } catch {
    return '';
  }
}

/** api.proto's Status of a member status. */
export const STATUS_OF: Readonly<Record<MemberStatus, NodeStatus>> = {
  Online: 'STATUS_OK',
  Offline: 'STATUS_OFFLINE',
  Maintenance: 'STATUS_MAINTENANCE',
};

/** StorageNode of a member; `self` adds this process's live host figures. */
export function storageNodeView(record: MemberView, self: boolean, held?: NodeHoldings): StorageNodeView {
  const ip = hostOf(record.api_url);
  const total = self ? totalmem() : 0;
  const free = self ? freemem() : 0;
  const { capacity } = record;
  return {
    id: record.id,
    status: STATUS_OF[record.status],
    hostname: record.hostname,
    mgmt_ip: ip,
    data_ip: hostOf(record.addresses?.repl ?? '') || ip,
    cpu: self ? cpus().length : 0,
    mem_total: total,
    mem_used: total - free,
    mem_free: free,
    avg_load: self ? (loadavg()[0] ?? 0) : 0,
    node_labels: record.labels,
    api_url: record.api_url,
    version: record.version,
    start_time: record.start_time,
    last_seen: record.last_seen,
    state: record.status,
    addresses: { api: record.api_url, ...record.addresses },
    ...(capacity !== undefined && {
      capacity: {
        size_bytes: capacity.size_bytes,
        free_bytes: capacity.free_bytes,
        used_bytes: Math.max(0, capacity.size_bytes - capacity.free_bytes),
      },
    }),
    volumes: held?.attached ?? [],
    replicas: held?.replicas ?? [],
  };
}

/** Every node as StorageNode, by id. */
export async function storageNodes(directory: ClusterDirectory): Promise<StorageNodeView[]> {
  const [members, holdings] = await Promise.all([directory.members(), directory.holdings()]);
  return members.map((m) => storageNodeView(m, m.id === directory.nodeId, holdings.get(m.id)));
}

/** The node `id` as StorageNode; NOT_FOUND when the cluster has no such node. */
async function inspect(directory: ClusterDirectory | undefined, id: string): Promise<StorageNodeView> {
  if (directory === undefined) notANode();
  const record = (await directory.members()).find((n) => n.id === id);
  if (record === undefined) {
    if (id === directory.nodeId) {
      throw new FerryError('UNAVAILABLE', 'this node has not announced itself yet; retry in a moment');
    }
    throw new FerryError('NOT_FOUND', `no node "${id}"; list them with GET /v1/nodes`);
  }
  return storageNodeView(record, id === directory.nodeId, (await directory.holdings()).get(id));
}

const define = operationsWith<ClusterDirectory | undefined>();

/** The node rpcs. */
export const nodeOperations = [
  define({
    method: 'get',
    path: '/v1/nodes',
    operationId: 'nodeEnumerate',
    tag: 'Nodes',
    summary: 'Ids of the nodes of the cluster (Offline ones too).',
    rpc: 'OpenStorageNode.Enumerate',
    response: nodeEnumerateResponseSchema,
    handler: async (c, _input, directory) => {
      if (directory === undefined) notANode();
      return c.json({ node_ids: (await directory.members()).map((n) => n.id) });
    },
  }),
  define({
    method: 'get',
    path: '/v1/nodes/filters',
    operationId: 'nodeEnumerateWithFilters',
    tag: 'Nodes',
    summary: 'Every node of the cluster: status, labels, addresses, capacity, volumes and replicas held.',
    rpc: 'OpenStorageNode.EnumerateWithFilters',
    response: nodeEnumerateWithFiltersResponseSchema,
    handler: async (c, _input, directory) => {
      if (directory === undefined) notANode();
      return c.json({ nodes: await storageNodes(directory) });
    },
  }),
  define({
    method: 'get',
    path: '/v1/nodes/inspectcurrent',
    operationId: 'nodeInspectCurrent',
    tag: 'Nodes',
    summary: 'The node answering this request.',
    rpc: 'OpenStorageNode.InspectCurrent',
    response: nodeInspectResponseSchema,
    handler: async (c, _input, directory) => {
      if (directory === undefined) notANode();
      return c.json({ node: await inspect(directory, directory.nodeId) });
    },
  }),
  define({
    method: 'get',
    path: '/v1/nodes/inspect/{node_id}',
    operationId: 'nodeInspect',
    tag: 'Nodes',
    summary: 'One node of the cluster.',
    rpc: 'OpenStorageNode.Inspect',
    params: { node_id: nodeIdSchema },
    response: nodeInspectResponseSchema,
    handler: async (c, { params }, directory) => c.json({ node: await inspect(directory, params.node_id) }),
  }),
  define({
    method: 'post',
    path: '/v1/nodes/maintenance/{node_id}',
    operationId: 'nodeMaintenance',
    tag: 'Nodes',
    summary: 'Puts a node in maintenance (placement skips it) or takes it out; admins only.',
    params: { node_id: nodeIdSchema },
    body: nodeMaintenanceRequestSchema,
    response: nodeInspectResponseSchema,
    handler: async (c, { params, body }, directory) => {
      if (directory === undefined) notANode();
      const principal = principalOf(c);
      if (principal !== undefined && !isAdmin(principal)) {
        throw new FerryError('PERMISSION_DENIED', `${principal.sub} is not a system.admin; only admins may do this`);
      }
      await directory.setMaintenance(params.node_id, body.maintenance);
      return c.json({ node: await inspect(directory, params.node_id) });
    },
  }),
];

/** Routes of the node rpcs, to mount under `/v1`; without a directory they answer UNAVAILABLE. */
export function nodeRoutes(directory: ClusterDirectory | undefined): Hono {
  return addOperations(new Hono(), nodeOperations, directory);
}
