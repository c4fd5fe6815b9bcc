/**
 * OpenStorageClusterPair rpcs: GetToken GET /v1/clusterpairs/token (a token the other cluster pairs with, valid
 * `ttl_seconds`, default an hour, for one pair), Create POST /v1/clusterpairs, Enumerate GET /v1/clusterpairs,
 * Inspect GET /v1/clusterpairs/inspect/{cluster_id} (with the pair's live status and round trip), Delete DELETE
 * /v1/clusterpairs/{cluster_id}. A pair is named by its name, its id or the other cluster's id. Admins only
 * (api/auth/policy.ts): a pair lets another cluster write volumes here.
 */
import { Hono } from 'hono';
import { z } from 'zod';
import { FerryError } from '../../common/index.js';
import { addOperations, operationsWith } from '../operation.js';
import type { PairRecord } from '../pairs/records.js';
import type { PairService, PairStatus } from '../pairs/service.js';
import { pairCreateSchema, type pairInfoSchema, pairRefSchema, pairTokenQuerySchema } from '../schemas/index.js';

const define = operationsWith<PairService | undefined>();

function pairsOf(pairs: PairService | undefined): PairService {
  if (pairs === undefined) {
    throw new FerryError(
      'UNAVAILABLE',
      'this server is not a storage node; ask a node started with `ferry node start`',
    );
  }
  return pairs;
}

/** ClusterPairInfo of a pair (with its status when given). */
export function pairInfo(pair: PairRecord, status?: PairStatus): z.infer<typeof pairInfoSchema> {
  return {
    id: pair.remote_cluster_id,
    pair_id: pair.id,
    name: pair.name,
    endpoint: pair.remote_url,
    secure: true,
    remote_cluster_name: pair.remote_cluster_name,
    created: pair.created,
    initiated: pair.initiated,
    ...(pair.credential_id !== undefined && { credential_id: pair.credential_id }),
    ...(status !== undefined && { ...status }),
  };
}

/** The pair a path names: by name, pair id or the other cluster's id. */
async function pairNamed(pairs: PairService, ref: string): Promise<PairRecord> {
  const byCluster = (await pairs.pairs()).filter((p) => p.remote_cluster_id === ref);
  if (byCluster.length === 1 && byCluster[0] !== undefined) return byCluster[0];
  return pairs.pair(ref);
}

export const clusterPairOperations = [
  define({
    method: 'get',
    path: '/v1/clusterpairs/token',
    operationId: 'clusterPairGetToken',
    tag: 'Cluster pairs',
    summary: 'A token another cluster pairs with (valid ttl_seconds, default 3600, for one pair).',
    rpc: 'OpenStorageClusterPair.GetToken',
    query: pairTokenQuerySchema,
    response: z.strictObject({ result: z.strictObject({ token: z.string() }), expires: z.string() }),
    handler: async (c, { query }, pairs) => {
      const ttl = query.ttl_seconds !== undefined ? Number(query.ttl_seconds) : undefined;
      const { token, expires } = await pairsOf(pairs).issueToken(ttl);
      return c.json({ result: { token }, expires });
    },
  }),
  define({
    method: 'post',
    path: '/v1/clusterpairs',
    operationId: 'clusterPairCreate',
    tag: 'Cluster pairs',
    summary: 'Pairs with the cluster at remote_url (its API) using the token it issued.',
    rpc: 'OpenStorageClusterPair.Create',
    body: pairCreateSchema,
    handler: async (c, { body }, pairs) => {
      const r = body.request;
      const url =
        r.remote_url ??
        (r.remote_cluster_ip !== undefined
          ? `http://${r.remote_cluster_ip}:${r.remote_cluster_port ?? 9001}`
          : undefined);
      if (url === undefined) {
        throw new FerryError('INVALID_ARGUMENT', "request.remote_url: give the other cluster's API URL", {
          field: 'request.remote_url',
        });
      }
      const pair = await pairsOf(pairs).create({
        name: r.name ?? '',
        remote_url: url,
        token: r.remote_cluster_token,
        ...(r.credential_id !== undefined && { credential_id: r.credential_id }),
        ...(r.local_url !== undefined && { local_url: r.local_url }),
      });
      return c.json({
        result: { remote_cluster_id: pair.remote_cluster_id, remote_cluster_name: pair.remote_cluster_name },
        pair: pairInfo(pair),
      });
    },
  }),
  define({
    method: 'get',
    path: '/v1/clusterpairs',
    operationId: 'clusterPairEnumerate',
    tag: 'Cluster pairs',
    summary: "This cluster's pairs, each with its live status (a call to the other cluster, at most 3 s).",
    rpc: 'OpenStorageClusterPair.Enumerate',
    handler: async (c, _input, pairs) => {
      const service = pairsOf(pairs);
      const all = await service.pairs();
      const statuses = await Promise.all(all.map((p) => service.status(p)));
      const infos = all.map((p, i) => pairInfo(p, statuses[i]));
      return c.json({ result: { pairs: Object.fromEntries(infos.map((i) => [i.id, i])) }, pairs: infos });
    },
  }),
  define({
    method: 'get',
    path: '/v1/clusterpairs/inspect/{cluster_id}',
    operationId: 'clusterPairInspect',
    tag: 'Cluster pairs',
    summary: 'One pair, with its live status, round trip and the bandwidth its last transfer reached.',
    rpc: 'OpenStorageClusterPair.Inspect',
    params: { cluster_id: pairRefSchema },
    handler: async (c, { params }, pairs) => {
      const service = pairsOf(pairs);
      const pair = await pairNamed(service, params.cluster_id);
      return c.json({ result: { pair_info: pairInfo(pair, await service.status(pair)) } });
    },
  }),
  define({
    method: 'delete',
    path: '/v1/clusterpairs/{cluster_id}',
    operationId: 'clusterPairDelete',
    tag: 'Cluster pairs',
    summary: 'Deletes the pair here and asks the other cluster to forget it too (said in the answer).',
    rpc: 'OpenStorageClusterPair.Delete',
    params: { cluster_id: pairRefSchema },
    handler: async (c, { params }, pairs) => {
      const service = pairsOf(pairs);
      const pair = await pairNamed(service, params.cluster_id);
      return c.json(await service.delete(pair.id));
    },
  }),
];

/** Routes of the cluster pair rpcs, to mount under `/v1`. */
export function clusterPairRoutes(pairs: PairService | undefined): Hono {
  return addOperations(new Hono(), clusterPairOperations, pairs);
}
