/**
 * One chaos trial on a running test cluster (test/support/cluster.ts): creates its volume (shared, so that both
 * writers may attach through one node), starts a roaming and a pinned writer on the plan's first node, runs the
 * plan's faults one after another (each healed before the next), checks that the roaming writer gets writes
 * acknowledged again, heals everything, waits until every node is Online, reads the volume back through every node
 * and judges (test/chaos/checker.ts).
 */

import type { TestCluster } from '../support/cluster.js';
import { seededRandom } from '../support/fault-proxy.js';
import { judge, tally, type Violation, type WriteTally } from './checker.js';
import { NbdClient } from './nbd-client.js';
import { describeFault, type PlannedFault, type TrialPlan } from './schedule.js';
import { type NbdEndpoint, Writer } from './workload.js';

/** Blocks the writers own: the roaming writer the first ROAMING, the pinned one the next PINNED. */
const ROAMING = 192;
const PINNED = 64;
/** The volume's size: the writers' blocks and as many never written (which must read back as zeros). */
const VOLUME_BYTES = 2 * 1024 * 1024;
const READ_CHUNK = 256 * 1024;

/** A fault as it was run. */
export interface RunFault extends PlannedFault {
  /** The node it hit (none for etcd faults). */
  node?: number;
  /** Ms since the trial began when it struck and when it was healed. */
  struckMs?: number;
  healedMs?: number;
  /** Why striking or healing it failed. */
  error?: string;
}

/** A trial's outcome. */
export interface TrialResult {
  trial: number;
  seed: number;
  volume: string;
  repl: number;
  replicaNodes: number[];
  startAt: number;
  faults: RunFault[];
  writes: WriteTally;
  writers: { writer: number; pinned: boolean; connections: { via: number; atMs: number }[] }[];
  /** The nodes the volume was read back through. */
  readVia: number[];
  violations: Violation[];
  verdict: 'ok' | 'fail';
  /** Whether every node was Online again after the trial (else the cluster is not fit for another). */
  clusterHealed: boolean;
  elapsedMs: number;
  /** What happened, in order (connections lost and made, faults). */
  notes: string[];
}

/** Context of runTrial. */
export interface TrialContext {
  trial: number;
  /** Longest wait for the cluster to heal and the volume to be served again, ms; default 60 000. */
  recoverTimeoutMs?: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function endpoints(cluster: TestCluster): NbdEndpoint[] {
  return cluster.nodes.map((n, index) => {
    const url = new URL(n.nbdUrl.replace(/^nbd:/, 'http:'));
    return { index, host: url.hostname, port: Number(url.port) };
  });
}

/** Runs trial `plan` on `cluster`. */
export async function runTrial(cluster: TestCluster, plan: TrialPlan, context: TrialContext): Promise<TrialResult> {
  const began = performance.now();
  const clock = (): number => Math.round(performance.now() - began);
  const notes: string[] = [];
  const note = (message: string): void => {
    notes.push(`${clock()}ms ${message}`);
  };
  const volume = `chaos-${plan.seed}`;
  const violations: Violation[] = [];
  // Every node Online first (a node may still be settling after the last trial's faults).
  await healAll(cluster, context.recoverTimeoutMs ?? 60_000);
  await createVolume(cluster, plan, volume);
  const random = seededRandom(plan.seed ^ 0x5eed);
  const all = endpoints(cluster);
  const common = { volume, endpoints: all, startAt: plan.startAt, clock, note };
  const roaming = new Writer({ ...common, writer: 1, first: 0, count: ROAMING, random, requestTimeoutMs: 3000 });
  const pinnedRandom = seededRandom(plan.seed ^ 0xb10c);
  const pinned = new Writer({
    ...common,
    writer: 2,
    first: ROAMING,
    count: PINNED,
    random: pinnedRandom,
    pinned: true,
    requestTimeoutMs: 20_000,
  });
  roaming.start();
  pinned.start();
  const recoverMs = context.recoverTimeoutMs ?? 60_000;
  // Both writers write before the first fault, and the roaming one again after the last fault healed (liveness).
  const warm = await Promise.all([acksSince(roaming, 0, 8, recoverMs), acksSince(pinned, 0, 8, recoverMs)]);
  if (!warm.every((ok) => ok)) {
    violations.push({ check: 'unavailable', detail: `the writers had no writes acknowledged in ${recoverMs} ms` });
  }
  note('writers warm');
  const faults: RunFault[] = [];
  for (const planned of plan.faults) {
    await sleep(planned.afterMs);
    const run: RunFault = { ...planned };
    faults.push(run);
    await runFault(cluster, plan, run, roaming.node, clock, note);
    if (run.error !== undefined) violations.push({ check: 'fault-error', detail: `${run.kind}: ${run.error}` });
  }
  const healedAt = clock();
  await sleep(plan.tailMs);
  if (!(await acksSince(roaming, healedAt, 8, recoverMs))) {
    violations.push({
      check: 'unavailable',
      detail: `no write through any node was acknowledged in ${recoverMs} ms after the faults healed`,
    });
  }
  await Promise.all([roaming.stop(), pinned.stop()]);
  note('writers stopped');
  const healed = await healAll(cluster, recoverMs).then(
    () => undefined,
    (err: unknown) => String(err),
  );
  if (healed !== undefined) violations.push({ check: 'unavailable', detail: `the cluster did not heal: ${healed}` });
  note('cluster healed');
  // Read through every node, the replica holders first: each reads its own replica when it has one (R4).
  const readVia = [...plan.replicaNodes, ...all.map((e) => e.index).filter((i) => !plan.replicaNodes.includes(i))];
  const reads = await readAll(all, readVia, volume, recoverMs, note, violations);
  const writes = [...roaming.writes, ...pinned.writes];
  if (reads.length > 0) {
    violations.push(...judge({ volume, writes, blocks: VOLUME_BYTES / 4096, reads }));
  }
  return {
    trial: context.trial,
    seed: plan.seed,
    volume,
    repl: plan.repl,
    replicaNodes: plan.replicaNodes,
    startAt: plan.startAt,
    faults,
    writes: tally(writes),
    writers: [
      { writer: 1, pinned: false, connections: roaming.connections },
      { writer: 2, pinned: true, connections: pinned.connections },
    ],
    readVia,
    violations,
    verdict: violations.length === 0 ? 'ok' : 'fail',
    clusterHealed: healed === undefined && faults.every((f) => f.error === undefined),
    elapsedMs: clock(),
    notes,
  };
}

/** Creates the trial's volume: shared (both writers attach through one node), on the plan's replica nodes. */
async function createVolume(cluster: TestCluster, plan: TrialPlan, volume: string): Promise<void> {
  const ids = plan.replicaNodes.map((i) => cluster.nodes[i]?.id ?? '');
  const args = ['volume', 'create', volume, '--size', String(VOLUME_BYTES), '--repl', String(plan.repl)];
  for (let attempt = 1; ; attempt++) {
    const created = await cluster.ferry(plan.startAt, [...args, '--nodes', ids.join(','), '--shared']);
    if (created.code === 0) return;
    if (attempt === 5) throw new Error(`volume create ${volume} failed: ${created.stderr}`);
    await sleep(1000);
  }
}

/** The volume read through each node of `readVia` in turn; a node that does not serve it is a violation. */
async function readAll(
  all: readonly NbdEndpoint[],
  readVia: readonly number[],
  volume: string,
  timeoutMs: number,
  note: (m: string) => void,
  violations: Violation[],
): Promise<{ via: number; data: Buffer }[]> {
  const reads: { via: number; data: Buffer }[] = [];
  for (const via of readVia) {
    const got = await readBack(all[via] as NbdEndpoint, volume, timeoutMs, note);
    if (got instanceof Error) {
      violations.push({ check: 'unavailable', detail: `the volume was not served by node ${via}: ${got.message}` });
    } else {
      reads.push({ via, data: got });
    }
  }
  return reads;
}

/** Waits until `writer` has `count` writes acknowledged at or after `sinceMs`; false after `timeoutMs`. */
async function acksSince(writer: Writer, sinceMs: number, count: number, timeoutMs: number): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (writer.writes.filter((w) => w.ackedMs !== undefined && w.ackedMs >= sinceMs).length >= count) return true;
    if (performance.now() > deadline) return false;
    await sleep(50);
  }
}

/** The node a fault hits: the coordinator (the roaming writer's node) or a replica node other than it. */
function targetOf(plan: TrialPlan, fault: PlannedFault, coordinator: number): number | undefined {
  if (fault.kind === 'partition-etcd' || fault.kind === 'restart-etcd') return undefined;
  if (fault.kind.endsWith('coordinator')) return coordinator;
  const others = plan.replicaNodes.filter((n) => n !== coordinator);
  const candidates = others.length > 0 ? others : plan.replicaNodes;
  return candidates[Math.floor(fault.pick * candidates.length)];
}

/** Strikes `fault`, waits its duration, heals it; errors are recorded on it. */
async function runFault(
  cluster: TestCluster,
  plan: TrialPlan,
  fault: RunFault,
  coordinator: number,
  clock: () => number,
  note: (m: string) => void,
): Promise<void> {
  const node = targetOf(plan, fault, coordinator);
  if (node !== undefined) fault.node = node;
  const at = (i: number | undefined) => {
    const n = cluster.nodes[i ?? -1];
    if (n === undefined) throw new Error(`no node ${i}`);
    return n;
  };
  const proxyOf = (i: number | undefined) => {
    const proxy = at(i).replProxy;
    if (proxy === undefined) throw new Error('link faults need a cluster started with replProxy');
    return proxy;
  };
  const diskOf = (i: number | undefined) => {
    const disk = at(i).disk;
    if (disk === undefined) throw new Error('disk-full needs a cluster started with smallDiskMiB');
    return disk;
  };
  const etcdLink = () => {
    if (cluster.etcdLink === undefined) throw new Error('etcd partitions need a cluster started with etcdProxy');
    return cluster.etcdLink;
  };
  const strikes: Record<PlannedFault['kind'], () => Promise<() => Promise<void>>> = {
    'kill-coordinator': async () => {
      await cluster.kill(node ?? -1);
      return () => cluster.restart(node ?? -1);
    },
    'kill-replica': async () => {
      await cluster.kill(node ?? -1);
      return () => cluster.restart(node ?? -1);
    },
    'pause-coordinator': async () => {
      cluster.pause(node ?? -1);
      return async () => cluster.resume(node ?? -1);
    },
    'partition-coordinator': async () => {
      await cluster.cut(node ?? -1);
      return () => cluster.heal(node ?? -1);
    },
    'partition-replica': async () => {
      await cluster.cut(node ?? -1);
      return () => cluster.heal(node ?? -1);
    },
    'partition-etcd': async () => {
      etcdLink().setHold(true);
      return async () => etcdLink().setHold(false);
    },
    'restart-etcd': async () => {
      await cluster.etcd.stop();
      return () => cluster.etcd.start();
    },
    'slow-link': async () => {
      proxyOf(node).setDelay(fault.delayMs ?? 100);
      return async () => proxyOf(node).setDelay(0);
    },
    'stall-link': async () => {
      proxyOf(node).setHold(true);
      return async () => proxyOf(node).setHold(false);
    },
    'disk-full': async () => {
      await diskOf(node).fill();
      return () => diskOf(node).free();
    },
  };
  note(`fault ${describeFault(fault, node)}`);
  let heal: (() => Promise<void>) | undefined;
  try {
    fault.struckMs = clock();
    heal = await strikes[fault.kind]();
    await sleep(fault.durationMs);
  } catch (err: unknown) {
    fault.error = `strike: ${String(err)}`;
  }
  try {
    await heal?.();
    fault.healedMs = clock();
    note(`healed ${fault.kind}`);
  } catch (err: unknown) {
    fault.error = `${fault.error ?? ''} heal: ${String(err)}`.trim();
  }
}

/** Undoes whatever is still broken (resumes, heals links, restarts nodes and etcd) and waits until all are Online. */
export async function healAll(cluster: TestCluster, timeoutMs: number): Promise<void> {
  await cluster.etcd.start();
  cluster.etcdLink?.setHold(false);
  for (const [i, node] of cluster.nodes.entries()) {
    if (node.paused) cluster.resume(i);
    if (node.host?.isCut) await cluster.heal(i);
    node.replProxy?.setHold(false);
    node.replProxy?.setDelay(0);
    if (node.disk?.isFull) await node.disk.free();
  }
  for (const [i, node] of cluster.nodes.entries()) {
    if (node.process === undefined) await cluster.restart(i);
  }
  const online = Object.fromEntries(cluster.nodes.map((n) => [n.id, 'Online' as const]));
  await Promise.all(cluster.nodes.map((_n, i) => cluster.waitForStates(i, online, timeoutMs)));
}

/** Reads the whole volume through `endpoint`, retrying until it is served or `timeoutMs` passed. */
async function readBack(
  endpoint: NbdEndpoint,
  volume: string,
  timeoutMs: number,
  note: (m: string) => void,
): Promise<Buffer | Error> {
  const deadline = performance.now() + timeoutMs;
  let last: unknown;
  while (performance.now() < deadline) {
    let client: NbdClient | undefined;
    try {
      client = await NbdClient.connect({ host: endpoint.host, port: endpoint.port, name: volume });
      const parts: Buffer[] = [];
      for (let off = 0; off < VOLUME_BYTES; off += READ_CHUNK) parts.push(await client.read(off, READ_CHUNK));
      client.close();
      note(`read back through node ${endpoint.index}`);
      return Buffer.concat(parts);
    } catch (err: unknown) {
      last = err;
      client?.destroy();
      await sleep(300);
    }
  }
  return new Error(`not served in ${timeoutMs} ms; last: ${String(last)}`);
}
