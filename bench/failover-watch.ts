/**
 * A replica's state as the cluster store records it, followed by a watch on the volume's record in etcd (what every
 * node reads), not by polling a node: a poll every few milliseconds through a node's API costs that node CPU (an
 * HTTP request and store reads each time) while the bench is timing it, and sees a state only when a poll lands.
 * A watch reports every committed state, when it is committed, and costs the nodes nothing.
 */
import { clusterNamespace, connectEtcd } from '../node/index.js';
import type { BenchCluster } from './cluster-nodes.js';
import { monoNs } from './failover-client.js';

/** The cluster id the bench's nodes start with (cluster-nodes.ts), hence their keys' namespace in etcd. */
const BENCH_CLUSTER_ID = 'bench';

interface RecordShape {
  replicas?: { node_id: string; state?: string }[];
}

/** A state the record committed for the replica, and when the watch saw it (monoNs). */
export interface StateSeen {
  state: string;
  atNs: number;
}

/** A watch on one replica's state; `stop` ends it. */
export interface ReplicaWatch {
  /** States committed since the watch started (repeats collapsed), the state at the start first. */
  readonly seen: readonly StateSeen[];
  /** Resolves with the first state at or after index `from` of `seen` that `done` accepts, as it comes. */
  until(done: (state: string) => boolean, from: number, timeoutMs: number): Promise<StateSeen>;
  stop(): Promise<void>;
}

/** Starts watching the state of volume `volumeId`'s replica on `nodeId` ('not listed' when it has none). */
export async function watchReplica(cluster: BenchCluster, volumeId: string, nodeId: string): Promise<ReplicaWatch> {
  const store = await connectEtcd([cluster.etcd.url], { namespace: clusterNamespace(BENCH_CLUSTER_ID) });
  const key = `/ferry/volumes/${volumeId}`;
  const seen: StateSeen[] = [];
  const waiters = new Set<() => void>();
  const note = (record: RecordShape | undefined): void => {
    const r = record?.replicas?.find((x) => x.node_id === nodeId);
    const state = r === undefined ? 'not listed' : (r.state ?? 'in-sync');
    if (seen.at(-1)?.state === state) return;
    seen.push({ state, atNs: monoNs() });
    for (const wake of waiters) wake();
  };
  const entry = await store.getEntry<RecordShape>(key);
  note(entry?.value);
  const watch = await store.watch<RecordShape>(key, { fromRevision: (entry?.modRevision ?? 0) + 1 });
  const pump = (async () => {
    for await (const e of watch) if (e.key === key) note(e.type === 'put' ? e.value : undefined);
  })().catch(() => undefined);
  return {
    seen,
    until: (done, from, timeoutMs) =>
      new Promise<StateSeen>((resolve, reject) => {
        let next = from;
        const check = (): void => {
          for (; next < seen.length; next++) {
            const s = seen[next] as StateSeen;
            if (done(s.state)) {
              finish();
              resolve(s);
              return;
            }
          }
        };
        const timer = setTimeout(() => {
          finish();
          reject(new Error(`not reached in ${timeoutMs / 1000} s; states seen: ${statesText(seen)}`));
        }, timeoutMs);
        const finish = (): void => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      }),
    stop: async () => {
      await watch.close();
      await pump;
      await store.close();
    },
  };
}

/** `a -> b -> c`. */
export function statesText(seen: readonly StateSeen[]): string {
  return seen.map((s) => s.state).join(' -> ');
}
