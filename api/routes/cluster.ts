/**
 * OpenStorageCluster rpcs (libopenstorage/openstorage api/api.proto): InspectCurrent GET /v1/clusters/inspectcurrent
 * (SdkClusterInspectCurrentResponse `{ cluster: { status, id, name } }`).
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
      const { id, name } = await directory.cluster();
      return c.json({ cluster: { status: 'STATUS_OK', id, name } });
    },
  }),
];

/** Routes of the cluster rpcs, to mount under `/v1`; without a directory they answer UNAVAILABLE. */
export function clusterRoutes(directory: ClusterDirectory | undefined): Hono {
  return addOperations(new Hono(), clusterOperations, directory);
}
