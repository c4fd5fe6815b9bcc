/**
 * How `ferry node start` reaches its cluster store (issue 22): without `--kvdb` (env FERRY_KVDB) the node runs alone
 * on the embedded SQLite store, as it always did; with it, it joins the cluster `--cluster-id` (FERRY_CLUSTER_ID) on
 * etcd, its keys under `/ferry-clusters/<cluster id>` (several clusters share one etcd without seeing each other),
 * with the cluster secret of `--cluster-secret-file` (FERRY_CLUSTER_SECRET_FILE). Every setting is parsed before
 * anything starts; a bad one is an InvalidArgumentError naming its flag and variable.
 */

import { join } from 'node:path';
import { InvalidArgumentError } from 'commander';
import { pathExists } from '../common/index.js';
import {
  CLUSTER_KEY,
  CLUSTER_SECRET_FILE,
  type ClusterStore,
  clusterNamespace,
  connectEtcd,
  createClusterSecret,
  parseClusterId,
  parseKvdb,
  parseLabels,
  readClusterSecret,
  SqliteStore,
} from '../node/index.js';
import { type HostPort, hostForUrl, parseHostPort } from './format.js';

/** The cluster settings of NodeOptions. */
export interface ClusterSettingsInput {
  /** `etcd:URL[,URL]` (`--kvdb`). Default env FERRY_KVDB, else none: one node on SQLite. */
  kvdb?: string;
  /** The cluster's id (`--cluster-id`), required with a kvdb. Default env FERRY_CLUSTER_ID. */
  clusterId?: string;
  /** `rack=r1,zone=z1,region=eu` (`--labels`). Default env FERRY_NODE_LABELS, else none. */
  labels?: string;
  /** Replication listen address `HOST:PORT` (`--repl-addr`). Default env FERRY_REPL_ADDR, else port 9002 on the API host. */
  replAddr?: string;
  /** The cluster secret file (`--cluster-secret-file`). Default env FERRY_CLUSTER_SECRET_FILE, else `<dataDir>/cluster.secret`. */
  clusterSecretFile?: string;
}

/** The node's cluster settings, parsed. */
export interface ClusterSettings {
  /** Undefined: one node on SQLite. */
  etcd?: { urls: string[]; clusterId: string; namespace: string; secretFile?: string };
  labels: Record<string, string>;
  replAddr: HostPort;
  /**
   * The replication address announced to the other nodes (env FERRY_REPL_ADVERTISE, `HOST:PORT`); default replAddr.
   * Differs when the node is reached through something in between (a test's fault proxy, a NAT).
   */
  replAdvertise: HostPort;
  /** The heartbeat lease's TTL, seconds (env FERRY_HEARTBEAT_SECONDS; default 10). */
  heartbeatSeconds: number;
}

function setting(flag: string | undefined, env: string): { text?: string; source: string } {
  if (flag !== undefined) return { text: flag, source: `--${envFlag(env)}` };
  const value = process.env[env];
  return value === undefined || value === '' ? { source: env } : { text: value, source: env };
}

function envFlag(env: string): string {
  return (
    {
      FERRY_KVDB: 'kvdb',
      FERRY_CLUSTER_ID: 'cluster-id',
      FERRY_NODE_LABELS: 'labels',
      FERRY_REPL_ADDR: 'repl-addr',
      FERRY_CLUSTER_SECRET_FILE: 'cluster-secret-file',
    }[env] ?? env
  );
}

/** Wraps a FerryError's message in an InvalidArgumentError (the CLI's "bad flag" error). */
function asArgument<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err: unknown) {
    throw new InvalidArgumentError(err instanceof Error ? err.message : String(err));
  }
}

/** Parses the cluster settings (flags over env); nothing is opened. */
export function clusterSettings(input: ClusterSettingsInput, apiAddr: HostPort): ClusterSettings {
  const kvdb = setting(input.kvdb, 'FERRY_KVDB');
  const id = setting(input.clusterId, 'FERRY_CLUSTER_ID');
  const labelsText = setting(input.labels, 'FERRY_NODE_LABELS');
  const repl = setting(input.replAddr, 'FERRY_REPL_ADDR');
  const secret = setting(input.clusterSecretFile, 'FERRY_CLUSTER_SECRET_FILE');
  const labels =
    labelsText.text === undefined ? {} : asArgument(() => parseLabels(labelsText.text ?? '', labelsText.source));
  let replAddr: HostPort;
  try {
    replAddr = repl.text === undefined ? { host: apiAddr.host, port: 9002 } : parseHostPort(repl.text);
  } catch (err: unknown) {
    throw new InvalidArgumentError(`${repl.source}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const advertised = setting(undefined, 'FERRY_REPL_ADVERTISE');
  let replAdvertise = replAddr;
  try {
    if (advertised.text !== undefined) replAdvertise = parseHostPort(advertised.text);
  } catch (err: unknown) {
    throw new InvalidArgumentError(`FERRY_REPL_ADVERTISE: ${err instanceof Error ? err.message : String(err)}`);
  }
  const beat = process.env.FERRY_HEARTBEAT_SECONDS;
  const heartbeatSeconds = beat === undefined || beat === '' ? 10 : Number(beat);
  if (!Number.isInteger(heartbeatSeconds) || heartbeatSeconds < 1 || heartbeatSeconds > 600) {
    throw new InvalidArgumentError(`FERRY_HEARTBEAT_SECONDS: "${beat}" must be a whole number of seconds, 1 to 600`);
  }
  if (kvdb.text === undefined) {
    for (const other of [id, secret]) {
      if (other.text !== undefined) {
        throw new InvalidArgumentError(
          `${other.source} needs --kvdb (env FERRY_KVDB=etcd:URL[,URL]): the cluster store`,
        );
      }
    }
    return { labels, replAddr, replAdvertise, heartbeatSeconds };
  }
  const urls = asArgument(() => parseKvdb(kvdb.text ?? '', kvdb.source));
  if (id.text === undefined) {
    throw new InvalidArgumentError(
      `${kvdb.source} needs a cluster id: --cluster-id (env FERRY_CLUSTER_ID), the same on every node of the cluster`,
    );
  }
  const clusterId = asArgument(() => parseClusterId(id.text ?? '', id.source));
  return {
    etcd: {
      urls,
      clusterId,
      namespace: clusterNamespace(clusterId),
      ...(secret.text !== undefined && { secretFile: secret.text }),
    },
    labels,
    replAddr,
    replAdvertise,
    heartbeatSeconds,
  };
}

/** The replication address as a URL (`tls://host:port`), as the node announces it. */
export function replUrl(addr: HostPort): string {
  return `tls://${hostForUrl(addr.host)}:${addr.port}`;
}

/** What openClusterStore opened. */
export interface OpenedStore {
  store: ClusterStore;
  /** The cluster secret (cluster mode only). */
  clusterSecret?: Buffer;
}

/**
 * Opens the node's cluster store: SQLite in `dataDir` alone, else etcd (checked reachable) with the cluster secret:
 * the given file; else `<dataDir>/cluster.secret` (a node that created its cluster); else, for a new cluster, a new
 * `<dataDir>/cluster.secret`; a node joining an existing cluster without one fails (copy the file). Closes the store
 * again when it fails.
 */
export async function openClusterStore(
  settings: ClusterSettings,
  dataDir: string,
  log: (level: 'info' | 'warn', msg: string, fields?: Record<string, unknown>) => void,
): Promise<OpenedStore> {
  const { etcd } = settings;
  if (etcd === undefined) return { store: new SqliteStore(join(dataDir, 'cluster.db')) };
  const store = await connectEtcd(etcd.urls, { namespace: etcd.namespace });
  try {
    let existing: unknown;
    try {
      existing = await store.get(CLUSTER_KEY);
    } catch (err: unknown) {
      throw new Error(
        `cannot reach etcd at ${etcd.urls.join(', ')} (--kvdb, env FERRY_KVDB): ${err instanceof Error ? err.message : String(err)}`,
        { cause: err },
      );
    }
    const own = join(dataDir, CLUSTER_SECRET_FILE);
    let clusterSecret: Buffer;
    if (etcd.secretFile !== undefined) {
      clusterSecret = await readClusterSecret(etcd.secretFile, '--cluster-secret-file (env FERRY_CLUSTER_SECRET_FILE)');
    } else if (await pathExists(own)) {
      clusterSecret = await readClusterSecret(own, own);
    } else if (existing !== undefined) {
      throw new InvalidArgumentError(
        `cluster "${etcd.clusterId}" already exists on etcd and this node has no cluster secret: copy cluster.secret ` +
          `from the data directory of the node that created the cluster (or the file the other nodes were given) to ` +
          `this host and pass it with --cluster-secret-file (env FERRY_CLUSTER_SECRET_FILE)`,
      );
    } else {
      const created = await createClusterSecret(dataDir);
      clusterSecret = created.secret;
      log(
        'warn',
        'new cluster: created its cluster secret; give this file to every other node (--cluster-secret-file)',
        {
          cluster_id: etcd.clusterId,
          cluster_secret_file: created.path,
        },
      );
    }
    return { store, clusterSecret };
  } catch (err: unknown) {
    await store.close();
    throw err;
  }
}
