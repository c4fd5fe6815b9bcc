import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { ABSENT, DATA, type GranuleMap, type Run, ZERO } from './granule-map.js';
import { MapLog } from './map-log.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function logPath(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ferry-maplog-'));
  dirs.push(dir);
  return join(dir, 'l.map');
}

function runsOf(map: GranuleMap): Run[] {
  return [...map.presentRuns()];
}

it('rewrites a log that outgrew its map, in batches, and replays to the same map; the data is synced first', async () => {
  const path = await logPath();
  const { log, map } = await MapLog.open(path, 4096);
  // 20,000 one-granule records over granules 0..9,999: first every third ABSENT and the rest DATA, then DATA and ZERO
  // in turn. The map needs 10,000 runs (more than one batch of the rewrite); the log holds twice that.
  const appended: Run[] = [];
  for (let g = 0; g < 10_000; g++) appended.push({ start: g, count: 1, state: g % 3 === 0 ? ABSENT : DATA });
  for (let g = 0; g < 10_000; g++) appended.push({ start: g, count: 1, state: g % 2 === 0 ? DATA : ZERO });
  for (const r of appended) map.set(r.start, r.count, r.state);
  await log.append(appended);
  const before = (await stat(path)).size;
  const expected = runsOf(map);
  expect(expected.length).toBeGreaterThan(4096);
  // A write marked while the rewrite runs: the new log may hold it, so its data must be synced before the rename.
  let synced = 0;
  let sizeAtSync = -1;
  await log.maybeCompact(map, async () => {
    synced++;
    sizeAtSync = (await stat(path)).size;
  });
  expect(synced).toBe(1);
  expect(sizeAtSync).toBe(before); // the old log was still in place when the data was synced
  const after = (await stat(path)).size;
  expect(after).toBe(16 + expected.length * 24);
  // Appends continue after the rewritten records.
  map.set(50_000, 3, DATA);
  await log.append([{ start: 50_000, count: 3, state: DATA }]);
  await log.close();
  const reopened = await MapLog.open(path, 4096);
  expect(runsOf(reopened.map)).toEqual(runsOf(map));
  await reopened.log.close();
});

it('leaves a log that is not much larger than its map as it is', async () => {
  const path = await logPath();
  const { log, map } = await MapLog.open(path, 4096);
  const appended: Run[] = [];
  for (let g = 0; g < 20_000; g++) appended.push({ start: g * 2, count: 1, state: DATA });
  for (const r of appended) map.set(r.start, r.count, r.state);
  await log.append(appended);
  const before = (await stat(path)).size;
  let synced = 0;
  await log.maybeCompact(map, async () => {
    synced++;
  });
  expect(synced).toBe(0);
  expect((await stat(path)).size).toBe(before);
  await log.close();
});
