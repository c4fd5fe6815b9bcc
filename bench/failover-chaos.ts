/**
 * Row 6 of the failover bench: acknowledged writes lost over the chaos checker's trials, read from the JSON that
 * `npm run chaos` writes (bench/results/chaos.json); this bench does not run the checker. The file's shape belongs
 * to the checker: read leniently (a `trials` or `results` array whose entries list `violations` with `check: 'lost-ack'` (one per
 * block whose acknowledged write is gone), or count lost writes under one of a few names, or totals at the top), and
 * say "not measured" when no count of lost acknowledged writes can be found. Other violations (a value never
 * written, two reads that disagree, a volume left unavailable) are counted beside it.
 */
import { readFile, stat } from 'node:fs/promises';
import { type FigureRow, reason } from './failover-verdict.js';

const LOST_KEYS = ['lost', 'lost_writes', 'acknowledged_lost', 'acked_lost', 'lostAcknowledged', 'lost_acknowledged'];

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The count of lost acknowledged writes in `o` under a known name (a number, or an array of them). */
function lostIn(o: Json): number | undefined {
  // The checker's trial result (test/chaos/trial.ts on h-chaos): `violations: [{ check: 'lost-ack' | ... }]`.
  if (Array.isArray(o.violations)) return o.violations.filter((v) => isObject(v) && v.check === 'lost-ack').length;
  for (const key of LOST_KEYS) {
    const v = o[key];
    if (typeof v === 'number') return v;
    if (Array.isArray(v)) return v.length;
  }
  for (const nest of ['verdict', 'summary', 'totals', 'result']) {
    const v = o[nest];
    if (isObject(v)) {
      const inner = lostIn(v);
      if (inner !== undefined) return inner;
    }
  }
  return undefined;
}

/** Reads `path` and returns the row. */
export async function chaosRow(path: string): Promise<FigureRow> {
  const base = {
    key: 'chaos',
    figure: 'chaos: acknowledged writes lost',
    goal: '0 over 100 trials',
    detail: `read from ${path} (written by npm run chaos; not run by this bench)`,
  };
  let text: string;
  let modified: string;
  try {
    text = await readFile(path, 'utf8');
    modified = (await stat(path)).mtime.toISOString();
  } catch {
    return { ...base, value: '-', verdict: 'not run' };
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err: unknown) {
    return { ...base, value: '-', verdict: `not measured: ${path} is not JSON (${reason(err)})` };
  }
  const top: Json = isObject(parsed) ? parsed : { trials: parsed };
  // `npm run chaos` (test/chaos/run.ts on h-chaos) writes `trials: <count>` and `results: [<trial>]`.
  const list = Array.isArray(top.trials) ? top.trials : Array.isArray(top.results) ? top.results : undefined;
  const trials = list?.filter(isObject);
  let lost: number | undefined;
  let count: number | undefined;
  if (trials !== undefined && trials.length > 0) {
    const each = trials.map(lostIn);
    if (each.every((n) => n !== undefined)) {
      lost = each.reduce<number>((a, b) => a + (b ?? 0), 0);
      count = trials.length;
    }
  }
  if (lost === undefined) {
    lost = lostIn(top);
    count = typeof top.trials === 'number' ? top.trials : trials?.length;
  }
  const others: Record<string, number> = {};
  for (const t of trials ?? []) {
    for (const v of Array.isArray(t.violations) ? t.violations : []) {
      const check = isObject(v) && typeof v.check === 'string' ? v.check : 'unknown';
      if (check !== 'lost-ack') others[check] = (others[check] ?? 0) + 1;
    }
  }
  if (lost === undefined || count === undefined) {
    const keys = Object.keys(top).join(', ');
    return {
      ...base,
      value: '-',
      verdict: `not measured: no count of lost acknowledged writes in ${path} (keys: ${keys})`,
    };
  }
  // Losses in any number of trials miss the goal; no loss in fewer than 100 trials does not meet it yet.
  const verdict = lost > 0 ? 'missed' : count < 100 ? `not measured: only ${count} of 100 trials (none lost)` : 'met';
  return {
    ...base,
    value: `${lost} lost over ${count} trials`,
    verdict,
    detail: `${base.detail}, file of ${modified}; other violations: ${JSON.stringify(others)}`,
    data: { lost, trials: count, other_violations: others, file_modified: modified },
  };
}
