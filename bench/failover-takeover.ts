/**
 * Row 1 of the failover bench: kill -9 of the coordinator's node -> the first acknowledged write and FLUSH through
 * another node. Three nodes; each trial a fresh 1 GiB volume with replicas on two of them (A, B), a real NBD client
 * (failover-client.ts, `loop`: 4 KiB write + FLUSH, one at a time) writing through A; once it has written, A is
 * killed (SIGKILL) and the client connects to B, then C, in turn, every 100 ms, until a write and its FLUSH are
 * acknowledged. The figure is the time from just before the kill to that acknowledgement, on one clock (the client
 * stamps CLOCK_MONOTONIC). A is started again before the next trial, and the next trial kills the next node.
 */

import type { BenchCluster } from './cluster-nodes.js';
import { type ClientEvent, monoNs, startClient } from './failover-client.js';
import { atMost, type FigureRow, percentile, reason, secs } from './failover-verdict.js';
import { createVolume, nodeAt, uriOf, waitNodeState } from './failover-volumes.js';

/** Options of the takeover figure. */
export interface TakeoverOptions {
  trials: number;
  /** Longest wait for the acknowledgement through another node, per trial. */
  trialTimeoutMs: number;
  /** Stop after this many failed trials (the rest would fail the same way). */
  maxFailures: number;
  /** The heartbeat lease's TTL in use, for the record (undefined: the node's default). */
  heartbeatSeconds?: number;
}

interface Trial {
  trial: number;
  killed: string;
  /** Nanoseconds from the kill to the acknowledgement; absent when none came in time. */
  ns?: number;
  /** Which URI (0 A, 1 B, 2 C) acknowledged. */
  via?: number;
  connectErrors: number;
  writeErrors: number;
  error?: string;
}

const GOAL_NS = 10e9;

/** The row's figure and goal. */
export const TAKEOVER_FIGURE = {
  key: 'takeover',
  figure: 'kill -9 of coordinator node -> first acked write+flush via another node (p50 / p99)',
  goal: 'p99 <= 10 s',
};

async function trial(cluster: BenchCluster, k: number, options: TakeoverOptions): Promise<Trial> {
  const a = nodeAt(cluster, k % 3);
  const b = nodeAt(cluster, (k + 1) % 3);
  const c = nodeAt(cluster, (k + 2) % 3);
  const name = `takeover-${k}`;
  await createVolume(cluster, (k + 1) % 3, name, '1G', [a, b]);
  const client = startClient({ mode: 'loop', uris: [a, b, c].map((n) => uriOf(n, name)), flushEvery: 1 });
  try {
    let acks = 0;
    await client
      .waitFor((e) => e.ev === 'ack' && e.node === 0 && ++acks >= 20, 60_000)
      .catch((err: unknown) => {
        const last = client.events.at(-1);
        throw new Error(
          `writing through the coordinator before the kill failed: ${reason(err)}; last ${JSON.stringify(last)}`,
        );
      });
    const from = client.events.length;
    const t0 = monoNs();
    await a.kill('SIGKILL');
    const result: Trial = { trial: k, killed: a.id, connectErrors: 0, writeErrors: 0 };
    try {
      const ack = await client.waitFor((e) => e.ev === 'ack' && e.node !== 0 && e.t > t0, options.trialTimeoutMs, from);
      result.ns = ack.t - t0;
      result.via = ack.node ?? -1;
    } catch (err: unknown) {
      // The surviving nodes' answers say why (the killed one only refuses connections).
      const failures = [...client.events.slice(from)]
        .reverse()
        .filter((e) => e.ev === 'connect-error' || e.ev === 'error');
      const last = failures.find((e) => e.node !== 0) ?? failures[0];
      result.error = `${reason(err)}; last error from a surviving node: ${last?.msg ?? 'none'}`;
    }
    const after = client.events.slice(from);
    const count = (ev: ClientEvent['ev']): number => after.filter((e) => e.ev === ev).length;
    result.connectErrors = count('connect-error');
    result.writeErrors = count('error');
    return result;
  } finally {
    await client.stop();
    if (!a.running()) {
      await a.restart();
      await waitNodeState(cluster, (k + 1) % 3, a.id, 'Online');
    }
  }
}

/** Runs the trials on a 3-node cluster and returns the row. */
export async function benchTakeover(cluster: BenchCluster, options: TakeoverOptions): Promise<FigureRow> {
  const trials: Trial[] = [];
  let failures = 0;
  let broken: string | undefined;
  for (let k = 0; k < options.trials && failures < options.maxFailures && broken === undefined; k++) {
    let t: Trial;
    try {
      t = await trial(cluster, k, options);
    } catch (err: unknown) {
      broken = `trial ${k + 1}: ${reason(err)}`;
      process.stdout.write(`takeover ${broken}\n`);
      break;
    }
    trials.push(t);
    if (t.ns === undefined) failures++;
    const shown = t.ns === undefined ? `none in ${options.trialTimeoutMs / 1000} s (${t.error})` : secs(t.ns);
    process.stdout.write(`takeover trial ${k + 1}/${options.trials}: ${shown}\n`);
  }
  const beat = options.heartbeatSeconds === undefined ? 'default (10 s)' : `${options.heartbeatSeconds} s`;
  const base = {
    ...TAKEOVER_FIGURE,
    data: { trials, heartbeat_seconds: options.heartbeatSeconds ?? null },
  };
  const times = trials.flatMap((t) => (t.ns === undefined ? [] : [t.ns]));
  const detail =
    `${trials.length} trials of ${options.trials} asked; 3 nodes, repl 2 volume (1 GiB), heartbeat lease ${beat}; ` +
    'client: libnbd, 4 KiB write + FLUSH at a time, round robin over the nodes every 100 ms; time from just before ' +
    "SIGKILL to the acknowledgement (the dead node's attach lock lease must expire first, F6: its TTL, the " +
    'heartbeat lease but at most 5 s, is the floor)' +
    `; acknowledged via the other replica's node in ${trials.filter((t) => t.via === 1).length}, ` +
    `via the node without a replica in ${trials.filter((t) => t.via === 2).length}`;
  if (broken !== undefined) {
    return { ...base, value: '-', verdict: `not measured: ${broken}`, detail };
  }
  if (failures > 0) {
    const first = trials.find((t) => t.ns === undefined);
    return {
      ...base,
      value: '-',
      verdict: `failed: ${failures} of ${trials.length} trials got no acknowledged write through another node in ${options.trialTimeoutMs / 1000} s${trials.length < options.trials ? ', stopped early' : ''} (${first?.error ?? ''})`,
      detail,
    };
  }
  const [p50, p99] = [percentile(times, 50), percentile(times, 99)];
  return { ...base, value: `${secs(p50)} / ${secs(p99)}`, verdict: atMost(p99, GOAL_NS), detail };
}
