/**
 * OpenStorageNode rpcs (libopenstorage/openstorage api/api.proto): Enumerate GET /v1/nodes (SdkNodeEnumerateResponse
 * `{ node_ids }`), Inspect GET /v1/nodes/inspect/{node_id} and InspectCurrent GET /v1/nodes/inspectcurrent
 * (`{ node: StorageNode }`). This node reports its live CPU count, memory and load; other nodes what they announced.
 */
import { cpus, freemem, loadavg, totalmem } from 'node:os';
import { Hono } from 'hono';
import { FerryError } from '../../common/index.js';
import type { ClusterDirectory, NodeRecord } from '../cluster-directory.js';
import { addOperations, operationsWith } from '../operation.js';
import {
  nodeEnumerateResponseSchema,
  nodeIdSchema,
  nodeInspectResponseSchema,
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

/** StorageNode of a node record; `self` adds this process's live host figures. */
export function storageNodeView(record: NodeRecord, self: boolean): StorageNodeView {
  const ip = hostOf(record.api_url);
  const total = self ? totalmem() : 0;
  const free = self ? freemem() : 0;
  return {
    id: record.id,
    // Only this node's state is known first hand; the others' records say only that they once started.
    status: self ? 'STATUS_OK' : 'STATUS_NONE',
    hostname: record.hostname,
    mgmt_ip: ip,
    data_ip: ip,
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
  };
}

/** The node `id` as StorageNode; NOT_FOUND when the cluster has no such node. */
async function inspect(directory: ClusterDirectory | undefined, id: string): Promise<StorageNodeView> {
  if (directory === undefined) notANode();
  const record = (await directory.nodes()).find((n) => n.id === id);
  if (record === undefined) {
    if (id === directory.nodeId) {
      throw new FerryError('UNAVAILABLE', 'this node has not announced itself yet; retry in a moment');
    }
    throw new FerryError('NOT_FOUND', `no node "${id}"; list them with GET /v1/nodes`);
  }
  return storageNodeView(record, id === directory.nodeId);
}

const define = operationsWith<ClusterDirectory | undefined>();

/** The node rpcs. */
export const nodeOperations = [
  define({
    method: 'get',
    path: '/v1/nodes',
    operationId: 'nodeEnumerate',
    tag: 'Nodes',
    summary: 'Ids of the nodes of the cluster.',
    rpc: 'OpenStorageNode.Enumerate',
    response: nodeEnumerateResponseSchema,
    handler: async (c, _input, directory) => {
      if (directory === undefined) notANode();
      return c.json({ node_ids: (await directory.nodes()).map((n) => n.id) });
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
];

/** Routes of the node rpcs, to mount under `/v1`; without a directory they answer UNAVAILABLE. */
export function nodeRoutes(directory: ClusterDirectory | undefined): Hono {
  return addOperations(new Hono(), nodeOperations, directory);
}
