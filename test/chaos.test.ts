/**
 * The chaos checker's short form in the suite (issue 23): 10 short trials with fixed seeds on a 3-node cluster
 * (nodes in network namespaces when this machine allows it), each a seeded fault or two (kills, pauses past the
 * lease, partitions, etcd down, slow and stalled links) under a roaming and a pinned NBD writer; no trial may lose an
 * acknowledged write, hold a value never written, or read differently through two nodes. `npm run chaos` runs more.
 */
import { expect, it } from 'vitest';
import { runChaos } from './chaos/chaos.js';

it('10 short chaos trials (seeds 2300..2309): no acknowledged write lost, no value never written, reads agree', async () => {
  const report = await runChaos({
    trials: 10,
    seed: 2300,
    scale: 0.5,
    faults: { min: 1, max: 1 },
    recoverTimeoutMs: 20_000,
    print: (line) => void process.stderr.write(`${line}\n`),
  });
  const violations = report.results.flatMap((r) =>
    r.violations.map(
      (v) => `trial seed ${r.seed} (${r.faults.map((f) => f.kind).join(', ')}): ${v.check}: ${v.detail}`,
    ),
  );
  expect(violations).toEqual([]);
  // The trials wrote and had writes acknowledged: a checker with nothing to check proves nothing.
  expect(report.results.every((r) => r.writes.acked > 0)).toBe(true);
}, 900_000);
