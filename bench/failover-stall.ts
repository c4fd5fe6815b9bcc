/**
 * Row 2 of the failover bench: the I/O stall a writer sees when a replica's node dies. Two nodes, a 1 GiB volume with
 * replicas on both (A coordinates: the client writes through A), a real NBD client (failover-client.ts, `loop`: 4 KiB
 * random writes one at a time, a FLUSH after every 8th) writing through A only; after it has written for a while, B
 * is killed (SIGKILL). Figures over the operations completed from `beforeMs` before the kill to `afterMs` after it:
 * p99 latency and the longest operation (the stall), with the same p99 before the kill for scale. Any I/O error the
 * writer sees is a failure of the row (the volume must go on without the replica).
 */

import type { BenchCluster } from './cluster-nodes.js';
import { type ClientEvent, monoNs, startClient } from './failover-client.js';
import { type FigureRow, ms, percentile, reason } from './failover-verdict.js';
import { createVolume, nodeAt, replicaOn, uriOf } from './failover-volumes.js';

/** Options of the stall figure. */
export interface StallOptions {
  /** Writing before the kill, ms; default 3000. */
  beforeMs?: number;
  /** Writing after the kill, ms; default 8000 (beyond the 5 s request timeout of R6). */
  afterMs?: number;
}

/** The row's figure and goal. */
export const STALL_FIGURE = {
  key: 'stall',
  figure: 'writer I/O stall when a replica node dies (kill -9): p99 / longest',
  goal: 'report (Longhorn drops a replica after 8 s)',
};

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Runs the figure on a 2-node cluster and returns the row. */
export async function benchStall(cluster: BenchCluster, options: StallOptions = {}): Promise<FigureRow> {
  const beforeNs = (options.beforeMs ?? 3000) * 1e6;
  const afterNs = (options.afterMs ?? 8000) * 1e6;
  const [a, b] = [nodeAt(cluster, 0), nodeAt(cluster, 1)];
  const name = 'stall';
  await createVolume(cluster, 0, name, '1G', [a, b]);
  const client = startClient({ mode: 'loop', uris: [uriOf(a, name)], flushEvery: 8 });
  const base = {
    ...STALL_FIGURE,
    detail:
      '2 nodes, repl 2 volume (1 GiB), client on the coordinator node: libnbd, 4 KiB random writes at depth 1, FLUSH ' +
      `every 8th; window ${beforeNs / 1e9} s before to ${afterNs / 1e9} s after SIGKILL of the other replica's node`,
  };
  try {
    await client
      .waitFor((e) => e.ev === 'ack', 60_000)
      .catch((err: unknown) => {
        throw new Error(`writing with both replicas up failed: ${reason(err)}; ${client.stderr().slice(-300)}`);
      });
    await sleep(beforeNs / 1e6);
    const from = client.events.length;
    const t0 = monoNs();
    await b.kill('SIGKILL');
    // Until the window is over, or the writer reports an error (and then a little longer, to see whether it recovers).
    const first = await client
      .waitFor((e) => (e.ev === 'ack' && e.t > t0 + afterNs) || e.ev === 'error', afterNs / 1e6 + 60_000, from)
      .catch(() => undefined);
    const window = client.events.filter((e) => e.t >= t0 - beforeNs && e.t <= t0 + afterNs);
    const acks = window.filter((e): e is ClientEvent & { lat: number } => e.ev === 'ack' && e.lat !== undefined);
    const before = acks.filter((e) => e.t < t0).map((e) => e.lat);
    const lats = acks.map((e) => e.lat);
    // A stall is also the wait of an operation still unanswered at the end of the window.
    const lastAck = acks.filter((e) => e.t >= t0).at(-1)?.t ?? t0;
    const pending = first === undefined ? t0 + afterNs - lastAck : 0;
    const longest = Math.max(0, ...lats, pending);
    const state = await replicaOn(cluster, 0, name, b.id).catch((err: unknown) => ({ state: reason(err) }));
    const data = {
      ops_in_window: lats.length,
      ops_after_kill: acks.filter((e) => e.t >= t0).length,
      p99_ns: percentile(lats, 99),
      p99_before_kill_ns: percentile(before, 99),
      longest_ns: longest,
      replica_state_after: state?.state ?? 'not listed',
    };
    const errors = client.events.slice(from).filter((e) => e.ev === 'error');
    if (errors.length > 0) {
      const e = errors[0] as ClientEvent;
      return {
        ...base,
        value: `p99 ${ms(data.p99_ns)} / longest ${ms(longest)}`,
        verdict: `failed: the writer got an I/O error ${ms(e.t - t0)} after the kill: ${e.msg ?? ''}`,
        data: { ...data, errors: errors.length },
      };
    }
    if (first === undefined) {
      return {
        ...base,
        value: '-',
        verdict: `failed: no write acknowledged in the ${afterNs / 1e9} s after the kill (stalled ${ms(pending)} and on)`,
        data,
      };
    }
    return {
      ...base,
      value: `p99 ${ms(data.p99_ns)} / longest ${ms(longest)} (p99 before kill ${ms(data.p99_before_kill_ns)})`,
      verdict: 'reported',
      data,
    };
  } finally {
    await client.stop();
  }
}
