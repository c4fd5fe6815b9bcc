/**
 * OpenStorageCluster rpcs (libopenstorage/openstorage api/api.proto): InspectCurrent GET /v1/clusters/inspectcurrent
 * (SdkClusterInspectCurrentResponse `{ cluster: { status, id, name } }`, plus Ferry's `nodes`: how many nodes are
 * Online, Offline, in Maintenance; the nodes themselves are GET /v1/nodes/filters), and Ferry's GET and PUT
 * /v1/clusters/options (the replication settings: resync bandwidth per node, replica timeout; admins only).
 */
import { type Context, Hono } from 'hono';
import { FerryError } from '../../common/index.js';
import { principalOf } from '../auth/context.js';
import { isAdmin } from '../auth/principal.js';
import type { ClusterDirectory } from '../cluster-directory.js';
import { addOperations, operationsWith } from '../operation.js';
import {
  clusterInspectResponseSchema,
  clusterOptionsResponseSchema,
  clusterOptionsUpdateSchema,
} from '../schemas/index.js';

/** Answers UNAVAILABLE: this server is not a storage node (e.g. the serverless handler). */
export function notANode(): never {
  throw new FerryError('UNAVAILABLE', 'this server is not a storage node; ask a node started with `ferry node start`');
}

const define = operationsWith<ClusterDirectory | undefined>();

/** PERMISSION_DENIED unless the caller is a system.admin (or the app runs without authentication). */
function requireAdmin(c: Context): void {
  const principal = principalOf(c);
  if (principal !== undefined && !isAdmin(principal)) {
    throw new FerryError('PERMISSION_DENIED', `${principal.sub} is not a system.admin; only admins may do this`);
  }
}

/** The directory when it keeps replication settings (a storage node's), else UNAVAILABLE. */
function settingsOf(
  directory: ClusterDirectory | undefined,
): Required<Pick<ClusterDirectory, 'replicationSettings' | 'setReplicationSettings'>> {
  const get = directory?.replicationSettings?.bind(directory);
  const set = directory?.setReplicationSettings?.bind(directory);
  if (get === undefined || set === undefined) notANode();
  return { replicationSettings: get, setReplicationSettings: set };
}

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
  define({
    method: 'get',
    path: '/v1/clusters/options',
    operationId: 'clusterOptions',
    tag: 'Cluster',
    summary: 'The cluster-wide replication settings: resync bandwidth per node, replica timeout; admins only.',
    response: clusterOptionsResponseSchema,
    handler: async (c, _input, directory) => {
      requireAdmin(c);
      return c.json({ options: await settingsOf(directory).replicationSettings() });
    },
  }),
  define({
    method: 'put',
    path: '/v1/clusters/options',
    operationId: 'clusterOptionsUpdate',
    tag: 'Cluster',
    summary: 'Changes replication settings (the ones given; every node applies them at once); admins only.',
    body: clusterOptionsUpdateSchema,
    response: clusterOptionsResponseSchema,
    handler: async (c, { body }, directory) => {
      requireAdmin(c);
      const settings = settingsOf(directory);
      return c.json({ options: await settings.setReplicationSettings(body) });
    },
  }),
];

/** Routes of the cluster rpcs, to mount under `/v1`; without a directory they answer UNAVAILABLE. */
export function clusterRoutes(directory: ClusterDirectory | undefined): Hono {
  return addOperations(new Hono(), clusterOperations, directory);
}
