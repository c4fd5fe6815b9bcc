/**
 * Engines of several nodes in one process on one real etcd, for the tests of cluster behaviour that need no node
 * processes: etcd starts once per file, and before each test the store is emptied and every node gets a fresh
 * engine on its own data directory, joined by a DirectConnector (its replicas called in process). Call it at the top
 * of a `describe` (it registers the hooks).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach } from 'vitest';
import {
  type ClusterStore,
  connectEtcd,
  openEngine,
  type PlacementPort,
  REPLICATION_SETTINGS_KEY,
  type ReplicaRecord,
  type VolumeEngine,
  type VolumeRecord,
} from '../../node/index.js';
import type { DirectConnector } from './direct-connector.js';
import { type EtcdServer, startEtcd } from './etcd.js';

export interface EnginesOnEtcdOptions<C extends DirectConnector> {
  /** The node ids. */
  nodes: readonly string[];
  placement: PlacementPort;
  /** Makes each test's connector. */
  connector: () => C;
  /** Prefix of each test's temporary directory. */
  prefix: string;
}

/** The current test's cluster (read its fields inside tests and hooks, not when the file loads). */
export interface EnginesOnEtcd<C extends DirectConnector> {
  readonly base: string;
  readonly store: ClusterStore;
  readonly connector: C;
  /** The engine of each node; a test that restarts one (`open`) replaces it here. */
  readonly engines: Map<string, VolumeEngine>;
  engine(nodeId: string): VolumeEngine;
  /** Opens node `nodeId`'s engine (again) on its data directory and registers it with the connector. */
  open(nodeId: string): Promise<VolumeEngine>;
  /** Volume `id`'s record as the store has it. */
  record(id: string): Promise<VolumeRecord>;
  /** The entry of node `nodeId`'s replica in volume `id`'s record. */
  entry(id: string, nodeId: string): Promise<ReplicaRecord | undefined>;
}

/** Polls `check` every 50 ms until it holds (engines work in the background); fails after `tries` polls. */
export async function until(check: () => Promise<boolean> | boolean, tries = 600): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error('the condition never held');
}

/** Registers the hooks and returns the cluster they keep (see the file comment). */
export function enginesOnEtcd<C extends DirectConnector>(options: EnginesOnEtcdOptions<C>): EnginesOnEtcd<C> {
  let server: EtcdServer | undefined;
  let base = '';
  let store: ClusterStore | undefined;
  let connector: C | undefined;
  const engines = new Map<string, VolumeEngine>();
  const need = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new Error(`${what} is only there inside a test`);
    return value;
  };
  const cluster: EnginesOnEtcd<C> = {
    get base() {
      return base;
    },
    get store() {
      return need(store, 'the store');
    },
    get connector() {
      return need(connector, 'the connector');
    },
    engines,
    engine: (n) => need(engines.get(n), `the engine of ${n}`),
    open: async (n) => {
      const e = await openEngine({
        dataDir: join(base, n),
        store: cluster.store,
        nodeId: n,
        replicas: cluster.connector,
        placement: options.placement,
      });
      engines.set(n, e);
      cluster.connector.add(n, e.replicaHost);
      return e;
    },
    record: async (id) => (await cluster.store.get<VolumeRecord>(`/ferry/volumes/${id}`)) as VolumeRecord,
    entry: async (id, n) => (await cluster.record(id)).replicas?.find((r) => r.node_id === n),
  };

  beforeAll(async () => {
    server = await startEtcd();
  });
  afterAll(async () => {
    await server?.destroy();
  });
  beforeEach(async () => {
    base = await mkdtemp(join(tmpdir(), options.prefix));
    store = await connectEtcd([need(server, 'etcd').url]);
    const left = await store.list('/');
    if (left.length > 0) await store.commit(left.map((kv) => ({ op: 'delete' as const, key: kv.key })));
    // Read at start: no replacement until a test shortens it.
    await store.put(REPLICATION_SETTINGS_KEY, { replica_timeout_seconds: 7200 });
    connector = options.connector();
    for (const n of options.nodes) await cluster.open(n);
  });
  afterEach(async () => {
    for (const e of engines.values()) await e.close();
    engines.clear();
    await store?.close();
    store = undefined;
    await rm(base, { recursive: true, force: true });
  });
  return cluster;
}
