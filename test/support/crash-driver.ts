/**
 * Child process for crash tests: sets up a volume on the engine, prints the expected states as one JSON line
 * ("EXPECT {...}"), arms one failpoint and runs the operation that hits it. The engine SIGKILLs the process there;
 * the test then reopens the data directory and checks it holds the old or the new state, never a mix.
 *
 * usage: node --import tsx test/support/crash-driver.ts DATA_DIR SCENARIO FAILPOINT
 */
import { createHash } from 'node:crypto';
import type { BlockDevice } from '../../node/index.js';
import { armFailpoints, openEngine } from '../../node/index.js';

const MiB = 1024 * 1024;
const [dataDir, scenario, point] = process.argv.slice(2) as [string, string, string];

function pattern(seed: number, length: number): Buffer {
  const b = Buffer.alloc(length);
  for (let i = 0; i < length; i += 4) b.writeUInt32LE((seed * 2654435761 + i * 40503) >>> 0, i);
  return b;
}

async function digest(dev: BlockDevice, close = true): Promise<string> {
  const h = createHash('sha256');
  for (let o = 0; o < dev.size; o += 4 * MiB) h.update(await dev.read(o, Math.min(4 * MiB, dev.size - o)));
  if (close) await dev.close();
  return h.digest('hex');
}

async function main(): Promise<void> {
  const engine = await openEngine({ dataDir });
  await engine.createVolume({ name: 'vol', size: 16 * MiB });
  const dev = await engine.openExport('vol');
  await dev.write(0, pattern(1, 8 * MiB));
  await dev.write(12 * MiB + 512, pattern(2, 3000));
  await engine.createSnapshot('vol', { name: 'a' });
  await dev.write(2 * MiB, pattern(3, 3 * MiB));
  await dev.writeZeroes(6 * MiB, MiB);
  await engine.createSnapshot('vol', { name: 'b' });
  await dev.write(MiB, pattern(4, 5 * MiB));
  await dev.flush();
  const live = await digest(dev, false);
  const snapA = await digest(await engine.openExport('vol@a'));
  const snapB = await digest(await engine.openExport('vol@b'));
  const report = (extra: Record<string, unknown>): void => {
    process.stdout.write(`EXPECT ${JSON.stringify({ live, a: snapA, b: snapB, ...extra })}\n`);
  };
  switch (scenario) {
    case 'flushed-write': {
      const data = pattern(9, 2 * MiB);
      await dev.write(8 * MiB, data, { fua: point === 'fua' });
      if (point !== 'fua') await dev.flush();
      report({ after: await digest(dev, false) });
      // Keep writing elsewhere, unflushed, until killed: the acknowledged data must not depend on these.
      for (let i = 0; ; i++) await dev.write(14 * MiB, pattern(100 + i, MiB));
    }
    case 'snapshot-create': {
      report({});
      armFailpoints([point]);
      await engine.createSnapshot('vol', { name: 'c' });
      break;
    }
    case 'snapshot-delete': {
      report({});
      armFailpoints([point]);
      await engine.deleteSnapshot('vol@a');
      break;
    }
    case 'snapshot-delete-newest': {
      report({});
      armFailpoints([point]);
      await engine.deleteSnapshot('vol@b');
      break;
    }
    case 'clone': {
      report({});
      armFailpoints([point]);
      await engine.cloneVolume({ parent_id: 'vol@b', name: 'copy' });
      break;
    }
    case 'resize': {
      report({});
      armFailpoints([point]);
      await engine.updateVolume('vol', { size: 32 * MiB });
      break;
    }
    case 'restore': {
      await dev.close();
      report({});
      armFailpoints([point]);
      await engine.restoreSnapshot('vol', 'vol@a');
      break;
    }
    case 'volume-delete': {
      await engine.cloneVolume({ parent_id: 'vol@a', name: 'keep' });
      await dev.close();
      report({});
      armFailpoints([point]);
      await engine.deleteVolume('vol');
      break;
    }
    default:
      throw new Error(`unknown scenario ${scenario}`);
  }
  // Work an operation leaves to the background (the layer of a deleted snapshot) is part of it here.
  await engine.settled?.();
  process.stdout.write('FINISHED\n');
  process.exit(0);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(3);
});
