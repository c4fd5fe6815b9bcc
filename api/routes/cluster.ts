/**
 * OpenStorageCluster rpcs (libopenstorage/openstorage api/api.proto): InspectCurrent GET /v1/clusters/inspectcurrent
 * (SdkClusterInspectCurrentResponse `{ cluster: { status, id, name } }`, plus Ferry's `nodes`: how many nodes are
 * Online, Offline, in Maintenance; the nodes themselves are GET /v1/nodes/filters).
 */
import { Hono } from 'hono';
import { FerryError } from '../../common/index.js';
import type { ClusterDirectory } from '../cluster-directory.js';
import { addOperations, operationsWith } from '../operation.js';
import { clusterInspectResponseSchema } from '../schemas/index.js';

/** Answers UNAVAILABLE: this server is not a storage node (e.g. the serverless handler). */
export function notANode(): never {
  throw new FerryError('UNAVAILABLE', 'this server is not a storage node; ask a node started with `ferry node start`');
}

const define = operationsWith<ClusterDirectory | undefined>();

/** The cluster rpcs. */
export const clusterOperations = [
  define({
    method: 'get',
    path: '/v1/clusters/inspectcurrent',
    operationId: 'clusterInspectCurrent',
    tag: 'Cluster',
    summary: 'The cluster this node belongs to: id, name, status.',
    rpc: 'OpenStorageCluster.InspectCurrent',
    response: clusterInspectResponseSchema,
    handler: async (c, _input, directory) => {
      if (directory === undefined) notANode();
      const [{ id, name }, members] = await Promise.all([directory.cluster(), directory.members()]);
      const count = (status: string): number => members.filter((m) => m.status === status).length;
      const nodes = { online: count('Online'), offline: count('Offline'), maintenance: count('Maintenance') };
      return c.json({ cluster: { status: 'STATUS_OK', id, name, nodes } });
    },
  }),
];

/** Routes of the cluster rpcs, to mount under `/v1`; without a directory they answer UNAVAILABLE. */
export function clusterRoutes(directory: ClusterDirectory | undefined): Hono {
  return addOperations(new Hono(), clusterOperations, directory);
}
