/**
 * `npm run chaos -- --trials 100 --seed N [--no-netns] [--no-small-disk] [--kinds a,b] [--faults MIN-MAX] [--scale X]
 * [--out FILE]`:
 * the chaos checker (test/chaos/chaos.ts) from the command line. It prints each trial's seed, faults and verdict,
 * writes the JSON to bench/results/chaos.json (or --out), and exits 1 when a trial failed. Needs `npm run build`
 * (the nodes run dist/cli/main.js) and root for network namespaces.
 */
import { parseArgs } from 'node:util';
import { runChaos } from './chaos.js';
import { FAULT_KINDS, type FaultKind } from './schedule.js';

const { values } = parseArgs({
  options: {
    trials: { type: 'string', default: '10' },
    seed: { type: 'string', default: String(Date.now() % 1_000_000) },
    'no-netns': { type: 'boolean', default: false },
    'no-small-disk': { type: 'boolean', default: false },
    kinds: { type: 'string' },
    faults: { type: 'string' },
    scale: { type: 'string' },
    out: { type: 'string', default: 'bench/results/chaos.json' },
  },
});

function whole(name: string, text: string | undefined): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a whole number, not ${text}`);
  return n;
}

const kinds = values.kinds?.split(',').map((k) => {
  if (!(FAULT_KINDS as readonly string[]).includes(k)) throw new Error(`unknown fault ${k}: ${FAULT_KINDS.join(', ')}`);
  return k as FaultKind;
});
const [min, max] = (values.faults ?? '').split('-');
const report = await runChaos({
  trials: whole('trials', values.trials),
  seed: whole('seed', values.seed),
  ...(values['no-netns'] && { netns: false }),
  ...(values['no-small-disk'] && { smallDiskMiB: 0 }),
  ...(kinds !== undefined && { kinds }),
  ...(values.faults !== undefined && { faults: { min: whole('faults', min), max: whole('faults', max ?? min) } }),
  ...(values.scale !== undefined && { scale: Number(values.scale) }),
  out: values.out,
});
process.exit(report.failed === 0 ? 0 : 1);
