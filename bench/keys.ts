/**
 * Key-provider figures: how often a backup reaches the key provider (through a CountingKeyProvider: a constant per
 * repository open, never per chunk), for a 1-chunk and a 10,000-chunk backup; and the unwrap latency a restore's
 * start pays with the master-secret cache cold (a fresh repository pool) and warm (an open repository reused), for
 * the local keyring and for Vault Transit through the protocol-level STAND-IN in test/support (loopback HTTP, so
 * its figures show the client's cost, not a real Vault's). Prints tables and writes bench/results/keys.json.
 *
 *   node --import tsx bench/keys.ts [--runs 20]
 */
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  createVaultClient,
  type DataKey,
  type EncryptionContext,
  type KekInfo,
  type KeyProvider,
  VaultTransitProvider,
  type WrappedKey,
} from '../kms/index.js';
import { backup, type KeyHarness, openHarness } from '../test/support/key-harness.js';
import { startVaultTransitStandin } from '../test/support/vault-transit-standin.js';
import { printTable, type Row, writeJson } from './report.js';

const CHUNK = 4096;

/** Records how long each unwrap takes. */
class TimingKeyProvider implements KeyProvider {
  readonly unwrapMs: number[] = [];
  constructor(private readonly inner: KeyProvider) {}
  get name(): string {
    return this.inner.name;
  }
  generateDataKey(kek: string, context: EncryptionContext): Promise<DataKey> {
    return this.inner.generateDataKey(kek, context);
  }
  wrap(kek: string, plaintext: Buffer, context: EncryptionContext): Promise<WrappedKey> {
    return this.inner.wrap(kek, plaintext, context);
  }
  async unwrap(wrapped: WrappedKey, context: EncryptionContext): Promise<Buffer> {
    const t0 = performance.now();
    try {
      return await this.inner.unwrap(wrapped, context);
    } finally {
      this.unwrapMs.push(performance.now() - t0);
    }
  }
  rewrap(wrapped: WrappedKey, context: EncryptionContext): Promise<WrappedKey> {
    return this.inner.rewrap(wrapped, context);
  }
  describeKek(kek: string): Promise<KekInfo> {
    return this.inner.describeKek(kek);
  }
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

async function volume(h: KeyHarness, name: string, chunks: number): Promise<void> {
  await h.engine.createVolume({ name, size: Math.max(chunks, 256) * CHUNK });
  const dev = await h.engine.openExport(name);
  for (let at = 0; at < chunks; at += 1024) {
    await dev.write(at * CHUNK, randomBytes(Math.min(1024, chunks - at) * CHUNK));
  }
  await dev.flush();
  await dev.close();
}

/** Provider calls of backups of `chunks` chunks: the first (creates the repository), then on a cold and a warm pool. */
async function callsPerBackup(h: KeyHarness, provider: 'local' | 'vault', chunks: number): Promise<Row[]> {
  const counting = h.counting.get(provider);
  if (counting === undefined) throw new Error(`no ${provider} provider`);
  const name = `${provider}-${chunks}`;
  const cred = name;
  await h.credential(cred, {
    prefix: name,
    ...(provider === 'vault' && { kek: 'backups', key_provider: 'vault' as const }),
  });
  await volume(h, name, chunks);
  const rows: Row[] = [];
  for (const when of ['first (creates the repository)', 'cold cache', 'warm cache'] as const) {
    if (when === 'cold cache') await h.reopenJobs();
    counting.reset();
    const t0 = performance.now();
    const done = await backup(h, name, cred);
    if (done.status !== 'Done') throw new Error(`backup failed: ${done.info.join('; ')}`);
    rows.push({
      provider,
      chunks,
      backup: when,
      wrap: counting.calls.wrap,
      unwrap: counting.calls.unwrap,
      other: counting.calls.rewrap + counting.calls.generateDataKey + counting.calls.describeKek,
      ms: performance.now() - t0,
    });
    // A later backup of the same volume would be an empty incremental: make a new volume of as many chunks.
    await h.engine.deleteVolume(name).catch(() => undefined);
    await volume(h, name, chunks);
  }
  return rows;
}

/** The repository open at a restore's start, with the cache cold and warm. */
async function restoreStart(h: KeyHarness, timing: TimingKeyProvider, cred: string, runs: number): Promise<Row[]> {
  const pool = (): KeyHarness['backups']['jobs']['repositories'] => h.backups.jobs.repositories;
  const cold: number[] = [];
  const warm: number[] = [];
  // Create the repository first: what is measured is opening an existing one.
  (await pool().acquire(cred)).release(true);
  const unwrapBefore = timing.unwrapMs.length;
  for (let i = 0; i < runs; i++) {
    await h.reopenJobs();
    let t0 = performance.now();
    (await pool().acquire(cred)).release(true);
    cold.push(performance.now() - t0);
    t0 = performance.now();
    (await pool().acquire(cred)).release(true);
    warm.push(performance.now() - t0);
  }
  const unwraps = timing.unwrapMs.slice(unwrapBefore);
  return [
    {
      provider: timing.name,
      cache: 'cold',
      unwrap_calls: unwraps.length / runs,
      unwrap_ms: median(unwraps),
      open_ms: median(cold),
    },
    { provider: timing.name, cache: 'warm', unwrap_calls: 0, unwrap_ms: 0, open_ms: median(warm) },
  ];
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { runs: { type: 'string', default: '20' } } });
  const runs = Number(values.runs);
  const vault = await startVaultTransitStandin();
  const root = createVaultClient({ endpoint: vault.endpoint, token: vault.rootToken });
  await root.api.write('transit/keys/backups', { derived: true });
  const timings = new Map<string, TimingKeyProvider>();
  const h = await openHarness({
    extra: [new VaultTransitProvider(root)],
    chunkSize: CHUNK,
    packSize: 4 * 1024 * 1024,
    wrap: (p) => {
      const t = new TimingKeyProvider(p);
      timings.set(p.name, t);
      return t;
    },
  });
  try {
    await h.credential('local', { prefix: 'local' });
    await h.credential('vault', { prefix: 'vault', kek: 'backups', key_provider: 'vault' });
    const calls: Row[] = [];
    for (const provider of ['local', 'vault'] as const) {
      for (const chunks of [1, 10_000]) calls.push(...(await callsPerBackup(h, provider, chunks)));
    }
    printTable('Key-provider calls per backup (4 KiB chunks)', calls);
    const latency: Row[] = [];
    for (const provider of ['local', 'vault']) {
      const timing = timings.get(provider);
      if (timing === undefined) throw new Error(`no ${provider} timing`);
      latency.push(...(await restoreStart(h, timing, provider, runs)));
    }
    printTable(`Repository open at a restore's start, median of ${runs} (Vault: the loopback stand-in)`, latency);
    await writeJson(fileURLToPath(new URL('./results/keys.json', import.meta.url)), {
      command: `node --import tsx bench/keys.ts --runs ${runs}`,
      node: process.version,
      date: new Date().toISOString(),
      note: 'Vault figures are against test/support/vault-transit-standin.ts on loopback, not a real Vault server',
      calls_per_backup: calls,
      restore_start: latency,
    });
  } finally {
    await h.close();
    await vault.close();
  }
}

await main();
