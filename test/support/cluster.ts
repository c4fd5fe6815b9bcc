/**
 * A real Ferry cluster for tests (issue 22): a real etcd (test/support/etcd.ts) and N `ferry node start` processes
 * (the built CLI, test/support/cli-node.ts) on loopback, each with its own data directory and free API, NBD and
 * replication ports, the same cluster id, cluster secret file and admin secret (every node's
 * `<dataDir>/auth/admin.secret` holds the same text, so one token works on every node until the auth secret is
 * cluster-wide), and a short heartbeat lease (FERRY_HEARTBEAT_SECONDS) so a killed node turns Offline soon.
 * `startCluster` resolves once every node lists every node Online. `cleanup` kills every process it started and
 * removes the directories. Needs `npm run build` first.
 *
 * For fault tests (issue 23): `replProxy` puts a fault proxy (test/support/fault-proxy.ts) in front of each node's
 * replication port and has the node announce the proxy (FERRY_REPL_ADVERTISE), so the links into a node can be
 * slowed, held or reset; `netns` runs each node in its own network namespace (test/support/netns.ts), so a node can be
 * cut off from everything and healed, and reaches etcd through a proxy (`etcdLink`) that can hold etcd's traffic (a
 * partition of etcd). Nodes can be paused (SIGSTOP) and resumed, killed and restarted on the same data directory.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mintToken } from '../../api/index.js';
import type { NodeView } from '../../cli/index.js';
import { type CliResult, type ReadyProcess, runFerry, spawnFerryUntilReady } from './cli-node.js';
import { type EtcdServer, startEtcd } from './etcd.js';
import { type FaultProxy, startFaultProxy } from './fault-proxy.js';
import { createNetLab, type NetHost, type NetLab } from './netns.js';
import { freePort } from './ports.js';
import { makeSmallDisk, type SmallDisk } from './small-disk.js';

/** Options of startCluster. */
export interface ClusterOptions {
  /** How many nodes (3 to 5 in the cluster tests). */
  nodes: number;
  /** Labels of each node, by index (e.g. `[{ rack: 'r1' }, { rack: 'r2' }]`); default none. */
  labels?: readonly Record<string, string>[];
  /** The heartbeat lease's TTL, seconds; default 2. */
  heartbeatSeconds?: number;
  /** More environment for every node. */
  env?: NodeJS.ProcessEnv;
  /** Longest wait for every node to list every node Online, ms; default 60 000. */
  readyTimeoutMs?: number;
  /** Each node's replication port behind a fault proxy, which the node announces; default false. */
  replProxy?: boolean;
  /** Etcd behind a fault proxy (`etcdLink`); default false, true with `netns`. */
  etcdProxy?: boolean;
  /** Each node in its own network namespace; default false. Needs root (see netnsAvailable). */
  netns?: boolean;
  /** Each node's data directory on a loop-mounted ext4 of this many MiB (test/support/small-disk.ts); default none. */
  smallDiskMiB?: number;
}

/** One node of a test cluster. */
export interface ClusterNode {
  /** Its node id (`<dataDir>/node-id`). */
  id: string;
  apiUrl: string;
  nbdUrl: string;
  /** Its replication address `127.0.0.1:PORT`. */
  replAddr: string;
  dataDir: string;
  labels: Record<string, string>;
  /** The running process; undefined once stopped or killed. */
  process?: ReadyProcess;
  /** The fault proxy in front of its replication port (option `replProxy`): every link into it passes there. */
  replProxy?: FaultProxy;
  /** Its network namespace (option `netns`). */
  host?: NetHost;
  /** Whether it is paused (SIGSTOP) now. */
  paused?: boolean;
  /** The small file system its data directory is on (option `smallDiskMiB`): `fill` makes its disk full. */
  disk?: SmallDisk;
}

/** A node as GET /v1/nodes/filters answers (the CLI's view of it). */
export type ListedNode = NodeView;

/** A running test cluster. */
export interface TestCluster {
  etcd: EtcdServer;
  clusterId: string;
  /** The cluster secret file every node was given. */
  secretFile: string;
  nodes: ClusterNode[];
  /** A bearer token (system.admin) every node accepts. */
  token: string;
  /** GET/POST `path` on node `i`'s API with the admin token; rejects on a non-2xx answer with its body. */
  request<T>(i: number, method: string, path: string, body?: unknown): Promise<T>;
  /** Node `i`'s view of every node (GET /v1/nodes/filters). */
  listNodes(i: number): Promise<ListedNode[]>;
  /** Waits until node `i` lists the nodes as `want` says (by node id), or rejects after `timeoutMs` (default 30 s). */
  waitForStates(i: number, want: Record<string, ListedNode['state']>, timeoutMs?: number): Promise<ListedNode[]>;
  /** Runs the built `ferry ...args` against node `i` (its data directory's admin secret mints the token). */
  ferry(i: number, args: string[]): Promise<CliResult>;
  /** SIGTERM to node `i`, then waits for its exit. */
  stop(i: number): Promise<void>;
  /** SIGKILL to node `i` (a crash), then waits for its exit. */
  kill(i: number): Promise<void>;
  /** Starts node `i` again on its data directory and ports. */
  restart(i: number): Promise<void>;
  /** SIGSTOP to node `i`: it holds its sockets and leases but does nothing. */
  pause(i: number): void;
  /** SIGCONT to node `i`. */
  resume(i: number): void;
  /** Cuts node `i`'s network link (option `netns`): nothing reaches it or leaves it. */
  cut(i: number): Promise<void>;
  /** Restores node `i`'s link. */
  heal(i: number): Promise<void>;
  /** The proxy between the nodes and etcd (options `etcdProxy`, `netns`): `setHold(true)` partitions etcd. */
  etcdLink?: FaultProxy;
  /** The network lab (option `netns`). */
  lab?: NetLab;
  /** Kills every node and etcd, removes every directory; safe to call twice. */
  cleanup(): Promise<void>;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Starts etcd and `options.nodes` nodes, and waits until every node lists every node Online. */
export async function startCluster(options: ClusterOptions): Promise<TestCluster> {
  const root = await mkdtemp(join(tmpdir(), 'ferry-cluster-'));
  const etcd = await startEtcd();
  const proxies: FaultProxy[] = [];
  const disks: SmallDisk[] = [];
  let lab: NetLab | undefined;
  let etcdLink: FaultProxy | undefined;
  const clusterId = `test-${randomBytes(4).toString('hex')}`;
  const secretFile = join(root, 'cluster.secret');
  await writeFile(secretFile, `${randomBytes(48).toString('base64')}\n`, { mode: 0o600 });
  const adminSecret = randomBytes(32).toString('base64url');
  const token = await mintToken(new TextEncoder().encode(adminSecret), { sub: 'test-admin', roles: ['system.admin'] });
  const heartbeat = String(options.heartbeatSeconds ?? 2);
  const nodes: ClusterNode[] = [];
  let cleaned = false;

  const cleanup = async (): Promise<void> => {
    if (cleaned) return;
    cleaned = true;
    await Promise.all(nodes.map((n) => n.process?.kill('SIGKILL')));
    await Promise.all(proxies.map((p) => p.close()));
    await etcd.destroy();
    for (const d of disks) await d.destroy();
    await lab?.destroy();
    await rm(root, { recursive: true, force: true });
  };

  const launch = async (node: ClusterNode): Promise<void> => {
    const args = [
      'node',
      'start',
      '--data-dir',
      node.dataDir,
      '--api-addr',
      new URL(node.apiUrl).host,
      '--nbd-addr',
      new URL(node.nbdUrl.replace(/^nbd:/, 'http:')).host,
      '--repl-addr',
      node.replAddr,
      '--kvdb',
      `etcd:${etcdLink?.url ?? etcd.url}`,
      '--cluster-id',
      clusterId,
      '--cluster-secret-file',
      secretFile,
      '--labels',
      Object.entries(node.labels)
        .map(([k, v]) => `${k}=${v}`)
        .join(','),
    ];
    node.process = await spawnFerryUntilReady(
      args,
      'ferry node ready',
      {
        FERRY_HEARTBEAT_SECONDS: heartbeat,
        // In a namespace the node's NBD address is not loopback, where TLS would be required: the test's clients
        // connect in plaintext from the root namespace.
        ...(node.host !== undefined && { FERRY_NBD_TLS: 'off' }),
        ...(node.replProxy !== undefined && { FERRY_REPL_ADVERTISE: `${proxyHost}:${node.replProxy.port}` }),
        ...options.env,
      },
      node.host?.prefix,
    );
    node.paused = false;
    const ready = node.process.ready;
    if (String(ready.api) !== node.apiUrl) throw new Error(`node ${node.dataDir} answers on ${String(ready.api)}`);
  };

  const request = async <T>(i: number, method: string, path: string, body?: unknown): Promise<T> => {
    const node = nodes[i];
    if (node === undefined) throw new Error(`no node ${i}`);
    const res = await fetch(`${node.apiUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body !== undefined && { 'content-type': 'application/json' }) },
      ...(body !== undefined && { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path} on node ${i}: ${res.status} ${text}`);
    return JSON.parse(text) as T;
  };

  const listNodes = async (i: number): Promise<ListedNode[]> =>
    (await request<{ nodes: ListedNode[] }>(i, 'GET', '/v1/nodes/filters')).nodes;

  const waitForStates = async (
    i: number,
    want: Record<string, ListedNode['state']>,
    timeoutMs = 30_000,
  ): Promise<ListedNode[]> => {
    const deadline = Date.now() + timeoutMs;
    let last: ListedNode[] | string = [];
    for (;;) {
      try {
        last = await listNodes(i);
        const seen = new Map(last.map((n) => [n.id, n.state]));
        if (Object.entries(want).every(([id, state]) => seen.get(id) === state)) return last;
      } catch (err: unknown) {
        last = err instanceof Error ? err.message : String(err);
      }
      if (Date.now() > deadline) {
        throw new Error(`node ${i} did not list ${JSON.stringify(want)} in time; last: ${JSON.stringify(last)}`);
      }
      await sleep(100);
    }
  };

  /** Where the nodes reach the proxies: the lab's bridge, or loopback. */
  let proxyHost = '127.0.0.1';
  try {
    if (options.netns) {
      lab = await createNetLab();
      proxyHost = lab.hostAddress;
    }
    if (options.etcdProxy || options.netns) {
      const target = new URL(etcd.url);
      etcdLink = await startFaultProxy({
        target: { host: target.hostname, port: Number(target.port) },
        listenHost: proxyHost,
        rate: 0,
      });
      proxies.push(etcdLink);
    }
    for (let i = 0; i < options.nodes; i++) {
      let disk: SmallDisk | undefined;
      if (options.smallDiskMiB !== undefined) {
        const diskDir = join(root, `disk-${i}`);
        await mkdir(diskDir);
        disk = await makeSmallDisk(diskDir, options.smallDiskMiB);
        disks.push(disk);
      }
      const dataDir = join(disk?.mountPoint ?? root, disk === undefined ? `node-${i}` : 'data');
      await mkdir(join(dataDir, 'auth'), { recursive: true, mode: 0o700 });
      await writeFile(join(dataDir, 'auth', 'admin.secret'), `${adminSecret}\n`, { mode: 0o600 });
      const id = `node-${i}-${randomBytes(3).toString('hex')}`;
      await writeFile(join(dataDir, 'node-id'), `${id}\n`, { mode: 0o600 });
      const [api, nbd, repl] = [await freePort(), await freePort(), await freePort()];
      const host = lab === undefined ? undefined : await lab.addHost();
      const address = host?.address ?? '127.0.0.1';
      let replProxy: FaultProxy | undefined;
      if (options.replProxy) {
        replProxy = await startFaultProxy({ target: { host: address, port: repl }, listenHost: proxyHost, rate: 0 });
        proxies.push(replProxy);
      }
      nodes.push({
        id,
        apiUrl: `http://${address}:${api}`,
        nbdUrl: `nbd://${address}:${nbd}`,
        replAddr: `${address}:${repl}`,
        dataDir,
        labels: { ...options.labels?.[i] },
        ...(replProxy !== undefined && { replProxy }),
        ...(host !== undefined && { host }),
        ...(disk !== undefined && { disk }),
      });
    }
    // Started at once: the first start of a cluster races on its records and its CA, as real nodes do.
    // allSettled: every start has ended (none left to leak) before a failure cleans up.
    const started = await Promise.allSettled(nodes.map((n) => launch(n)));
    const failed = started.find((r) => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    const allOnline = Object.fromEntries(nodes.map((n) => [n.id, 'Online' as const]));
    await Promise.all(nodes.map((_n, i) => waitForStates(i, allOnline, options.readyTimeoutMs ?? 60_000)));
  } catch (err: unknown) {
    await cleanup();
    throw err;
  }

  const nodeAt = (i: number): ClusterNode => {
    const node = nodes[i];
    if (node === undefined) throw new Error(`no node ${i}`);
    return node;
  };
  const hostOf = (i: number): NetHost => {
    const host = nodeAt(i).host;
    if (host === undefined) throw new Error('cut and heal need a cluster started with netns');
    return host;
  };
  const signal = (i: number, sig: NodeJS.Signals): void => {
    const pid = nodeAt(i).process?.pid;
    if (pid === undefined) throw new Error(`node ${i} is not running`);
    process.kill(pid, sig);
    nodeAt(i).paused = sig === 'SIGSTOP';
  };
  return {
    etcd,
    ...(etcdLink !== undefined && { etcdLink }),
    ...(lab !== undefined && { lab }),
    pause: (i) => signal(i, 'SIGSTOP'),
    resume: (i) => signal(i, 'SIGCONT'),
    cut: (i) => hostOf(i).cut(),
    heal: (i) => hostOf(i).heal(),
    clusterId,
    secretFile,
    nodes,
    token,
    request,
    listNodes,
    waitForStates,
    ferry: (i, args) => runFerry(nodeAt(i).apiUrl, args, { FERRY_DATA_DIR: nodeAt(i).dataDir }),
    stop: async (i) => {
      const node = nodeAt(i);
      await node.process?.stop();
      node.process = undefined;
    },
    kill: async (i) => {
      const node = nodeAt(i);
      await node.process?.kill('SIGKILL');
      node.process = undefined;
    },
    restart: async (i) => {
      const node = nodeAt(i);
      if (node.process !== undefined) throw new Error(`node ${i} is running`);
      await launch(node);
    },
    cleanup,
  };
}
