/**
 * Child process for the crash tests of encrypted volumes (test/engine-encryption.test.ts): an engine whose volume
 * keys come from the node's default keyring, one encrypted volume with two snapshots, then one scenario that is
 * killed (SIGKILL) half-way. Prints the expected digests as one line "EXPECT {...}" first.
 *
 * usage: node --import tsx test/support/encrypted-crash-driver.ts DATA_DIR flushed-write|merge
 */
import { createHash } from 'node:crypto';
import { KeyProviders, openDefaultKeyring, volumeKeys } from '../../kms/index.js';
import { armFailpoints, type BlockDevice, openEngine } from '../../node/index.js';

const MiB = 1024 * 1024;
const [dataDir, scenario] = process.argv.slice(2) as [string, string];

function pattern(seed: number, length: number): Buffer {
  const b = Buffer.alloc(length);
  for (let i = 0; i < length; i += 4) b.writeUInt32LE((seed * 2654435761 + i * 40503) >>> 0, i);
  return b;
}

async function digest(dev: BlockDevice, close = true, length = dev.size): Promise<string> {
  const h = createHash('sha256');
  for (let o = 0; o < length; o += 4 * MiB) h.update(await dev.read(o, Math.min(4 * MiB, length - o)));
  if (close) await dev.close();
  return h.digest('hex');
}

async function main(): Promise<void> {
  const keyring = await openDefaultKeyring(dataDir);
  const keys = volumeKeys({ providers: new KeyProviders([keyring]).lookup });
  const engine = await openEngine({ dataDir, keys });
  await engine.createVolume({ name: 'vol', size: 16 * MiB, encrypted: true });
  const dev = await engine.openExport('vol');
  await dev.write(0, pattern(1, 8 * MiB));
  await dev.write(12 * MiB + 512, pattern(2, 3000));
  await engine.createSnapshot('vol', { name: 'a' });
  await dev.write(2 * MiB + 100, pattern(3, 3 * MiB));
  await dev.writeZeroes(6 * MiB, MiB);
  await engine.createSnapshot('vol', { name: 'b' });
  await dev.write(MiB + 7, pattern(4, 5 * MiB));
  await dev.flush();
  const live = await digest(dev, false);
  const a = await digest(await engine.openExport('vol@a'));
  const b = await digest(await engine.openExport('vol@b'));
  if (scenario === 'flushed-write') {
    await dev.write(8 * MiB + 3, pattern(9, 2 * MiB), { fua: true });
    // Everything below 14 MiB, which the writes that follow do not touch.
    const after = await digest(dev, false, 14 * MiB);
    process.stdout.write(`EXPECT ${JSON.stringify({ live, a, b, after })}\n`);
    // Unflushed writes elsewhere until killed: the acknowledged data must not depend on them.
    for (let i = 0; ; i++) await dev.write(14 * MiB + (i % 4096), pattern(100 + i, MiB));
  }
  process.stdout.write(`EXPECT ${JSON.stringify({ live, a, b })}\n`);
  armFailpoints(['merge.midway']);
  await engine.deleteSnapshot('vol@b');
  // The merge runs in the background once the snapshot is deleted.
  await engine.settled?.();
  process.stdout.write('FINISHED\n');
  process.exit(0);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(3);
});
