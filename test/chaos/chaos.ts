/**
 * The chaos checker (issue 23, docs/REPLICATION.md section 8): a 3-node cluster on a real etcd, with each node's
 * replication port behind a fault proxy, etcd behind one too, and (when this machine allows it) each node in its own
 * network namespace; then `trials` trials, trial n with seed `seed + n` (so `--seed S --trials 1` replays trial S on a
 * fresh cluster). Trials share the cluster, each on a volume of its own; a cluster that did not heal is replaced.
 * Each trial prints its seed, faults and verdict; the whole run is written as JSON.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { startCluster, type TestCluster } from '../support/cluster.js';
import { netnsAvailable } from '../support/netns.js';
import type { Violation } from './checker.js';
import { DISK_FAULTS, describeFault, drawPlan, FAULT_KINDS, type FaultKind, NETNS_FAULTS } from './schedule.js';
import { runTrial, type TrialResult } from './trial.js';

/** Options of runChaos. */
export interface ChaosOptions {
  trials: number;
  /** Trial n's seed is seed + n. */
  seed: number;
  /** Each node in its own network namespace; default: when `ip netns` works here. */
  netns?: boolean;
  /** Each node's data directory on a loop-mounted ext4 of this many MiB, for disk-full; 0: none; default 256. */
  smallDiskMiB?: number;
  /** Fault kinds to draw from; default all (partitions of one node only with netns, disk-full with small disks). */
  kinds?: readonly FaultKind[];
  /** Faults per trial; default 1 to 2. */
  faults?: { min: number; max: number };
  /** Scales the schedule's durations (shorter trials for the suite); default 1. */
  scale?: number;
  /** The heartbeat lease, s; default 2. */
  leaseSeconds?: number;
  /** Longest wait for the cluster to heal and the volume to be served after a trial, ms; default 60 000. */
  recoverTimeoutMs?: number;
  /** Where the JSON goes; default none. */
  out?: string;
  /** Where each trial's line goes; default stdout. */
  print?: (line: string) => void;
}

/** A run's outcome. */
export interface ChaosReport {
  seed: number;
  trials: number;
  netns: boolean;
  kinds: FaultKind[];
  results: TrialResult[];
  /** Trials that failed, and violations by check. */
  failed: number;
  violations: Record<Violation['check'], number>;
  /** Acknowledged writes lost (lost-ack violations), the figure. */
  lostAcknowledged: number;
}

function startChaosCluster(netns: boolean, leaseSeconds: number, smallDiskMiB: number): Promise<TestCluster> {
  return startCluster({
    ...(smallDiskMiB > 0 && { smallDiskMiB }),
    nodes: 3,
    labels: [{ rack: 'r1' }, { rack: 'r2' }, { rack: 'r3' }],
    heartbeatSeconds: leaseSeconds,
    replProxy: true,
    etcdProxy: true,
    netns,
  });
}

/** A trial's line: seed, plan, faults as run, verdict. */
export function describeTrial(r: TrialResult): string {
  const faults = r.faults.map((f) => describeFault(f, f.node) + (f.error ? ` [error: ${f.error}]` : '')).join('; ');
  const head = `trial ${r.trial} seed ${r.seed} repl ${r.repl} replicas [${r.replicaNodes.join(',')}] start node ${r.startAt}`;
  const writes = `writes ${r.writes.sent} sent, ${r.writes.acked} acked`;
  const verdict = r.verdict === 'ok' ? 'OK' : `FAIL (${r.violations.length} violations)`;
  const lines = [`${head} | faults: ${faults} | ${writes} | ${verdict}`];
  for (const v of r.violations.slice(0, 5)) lines.push(`    ${v.check}: ${v.detail}`);
  if (r.violations.length > 5) lines.push(`    ... and ${r.violations.length - 5} more`);
  return lines.join('\n');
}

/** Runs the checker. */
export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const print = options.print ?? ((line: string) => void process.stdout.write(`${line}\n`));
  const netns = options.netns ?? (await netnsAvailable());
  const leaseSeconds = options.leaseSeconds ?? 2;
  const smallDiskMiB = options.smallDiskMiB ?? 256;
  const kinds = (options.kinds ?? FAULT_KINDS)
    .filter((k) => netns || !NETNS_FAULTS.includes(k))
    .filter((k) => smallDiskMiB > 0 || !DISK_FAULTS.includes(k));
  print(`chaos: ${options.trials} trials from seed ${options.seed}, netns ${netns}, faults ${kinds.join(' ')}`);
  const results: TrialResult[] = [];
  let cluster = await startChaosCluster(netns, leaseSeconds, smallDiskMiB);
  // Interrupted: the cluster's processes, namespaces and mounts go too.
  const interrupted = (signal: NodeJS.Signals): void => {
    print(`chaos: ${signal}, cleaning up`);
    void cluster.cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  try {
    for (let n = 0; n < options.trials; n++) {
      const plan = drawPlan(options.seed + n, {
        nodes: cluster.nodes.length,
        kinds,
        leaseSeconds,
        ...(options.faults !== undefined && { faults: options.faults }),
        ...(options.scale !== undefined && { scale: options.scale }),
      });
      const context = {
        trial: n,
        ...(options.recoverTimeoutMs !== undefined && { recoverTimeoutMs: options.recoverTimeoutMs }),
      };
      const result = await runTrial(cluster, plan, context).catch(
        (err: unknown): TrialResult => ({
          trial: n,
          seed: plan.seed,
          volume: `chaos-${plan.seed}`,
          repl: plan.repl,
          replicaNodes: plan.replicaNodes,
          startAt: plan.startAt,
          faults: [],
          writes: { sent: 0, replied: 0, acked: 0 },
          writers: [],
          readVia: [],
          violations: [{ check: 'unavailable', detail: `the trial could not run: ${String(err)}` }],
          verdict: 'fail',
          clusterHealed: false,
          elapsedMs: 0,
          notes: [],
        }),
      );
      results.push(result);
      print(describeTrial(result));
      if (!result.clusterHealed) {
        print('    (the cluster is replaced before the next trial)');
        await cluster.cleanup();
        cluster = await startChaosCluster(netns, leaseSeconds, smallDiskMiB);
      }
    }
  } finally {
    process.removeListener('SIGINT', interrupted);
    process.removeListener('SIGTERM', interrupted);
    await cluster.cleanup();
  }
  const violations: Record<Violation['check'], number> = {
    'lost-ack': 0,
    'never-written': 0,
    disagree: 0,
    unavailable: 0,
    'fault-error': 0,
  };
  for (const r of results) for (const v of r.violations) violations[v.check]++;
  const report: ChaosReport = {
    seed: options.seed,
    trials: options.trials,
    netns,
    kinds: [...kinds],
    results,
    failed: results.filter((r) => r.verdict === 'fail').length,
    violations,
    lostAcknowledged: violations['lost-ack'],
  };
  print(
    `chaos: ${report.failed} of ${report.trials} trials failed; violations ${JSON.stringify(violations)}; acknowledged writes lost ${report.lostAcknowledged}`,
  );
  if (options.out !== undefined) {
    await mkdir(dirname(options.out), { recursive: true });
    await writeFile(options.out, `${JSON.stringify(report, null, 2)}\n`);
  }
  return report;
}
