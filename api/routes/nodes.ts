/**
 * OpenStorageNode rpcs (libopenstorage/openstorage api/api.proto): Enumerate GET /v1/nodes (SdkNodeEnumerateResponse
 * `{ node_ids }`), Inspect GET /v1/nodes/inspect/{node_id} and InspectCurrent GET /v1/nodes/inspectcurrent
 * (`{ node: StorageNode }`). This node reports its live CPU count, memory and load; other nodes what they announced.
 */
import { cpus, freemem, loadavg, totalmem } from 'node:os';
import { Hono } from 'hono';
import { FerryError } from '../../common/index.js';
import type { ClusterDirectory, NodeRecord } from '../cluster-directory.js';
import { nodeIdSchema, type StorageNodeView } from '../schemas/index.js';
import { readParam } from '../validate.js';
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

/** Routes of the node rpcs, to mount under `/v1`; without a directory they answer UNAVAILABLE. */
export function nodeRoutes(directory: ClusterDirectory | undefined): Hono {
  const routes = new Hono();

  const inspect = async (id: string): Promise<StorageNodeView> => {
    if (directory === undefined) notANode();
    const record = (await directory.nodes()).find((n) => n.id === id);
    if (record === undefined) {
      if (id === directory.nodeId) {
        throw new FerryError('UNAVAILABLE', 'this node has not announced itself yet; retry in a moment');
      }
      throw new FerryError('NOT_FOUND', `no node "${id}"; list them with GET /v1/nodes`);
    }
    return storageNodeView(record, id === directory.nodeId);
  };

  routes.get('/nodes', async (c) => {
    if (directory === undefined) notANode();
    return c.json({ node_ids: (await directory.nodes()).map((n) => n.id) });
  });

  routes.get('/nodes/inspectcurrent', async (c) => {
    if (directory === undefined) notANode();
    return c.json({ node: await inspect(directory.nodeId) });
  });

  routes.get('/nodes/inspect/:node_id', async (c) => {
    const id = readParam(c, 'node_id', nodeIdSchema);
    return c.json({ node: await inspect(id) });
  });

  return routes;
}
