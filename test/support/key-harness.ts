/**
 * A node in this process for key-provider tests and benchmarks: cluster store, engine and default keyring in a temp
 * dir, a directory object store under `<dataDir>/objects`, the node's key providers (the local keyring plus any
 * given, each wrapped in a CountingKeyProvider), credentials, cloud backup jobs and the KeyService.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CloudBackups, CredentialStore, type JobStatus, KeyService, type RetryOptions } from '../../cloudsnap/index.js';
import {
  CountingKeyProvider,
  type KeyProvider,
  KeyProviders,
  type LocalKeyring,
  openDefaultKeyring,
  volumeKeys,
} from '../../kms/index.js';
import { openEngine, SqliteStore, type VolumeEngine } from '../../node/index.js';

const MiB = 1024 * 1024;

export interface HarnessOptions {
  /** Providers besides the local keyring (e.g. Vault Transit against the stand-in). */
  extra?: KeyProvider[];
  /** Job retries of an unreachable provider; default tiny delays (1 ms, 2 ms, 4 ms). */
  retry?: RetryOptions;
  /** TTL of cached master secrets. */
  keyCacheTtlMs?: number;
  /** Pack size of new repositories; default 1 MiB. */
  packSize?: number;
  /** Chunk size of new repositories; default the format's 64 KiB. */
  chunkSize?: number;
  /** Wraps each provider (inside the counting wrapper), e.g. to make it fail. */
  wrap?: (provider: KeyProvider) => KeyProvider;
}

export interface KeyHarness {
  dataDir: string;
  /** The node's cluster store (job records live there). */
  clusterStore: SqliteStore;
  /** Directory credentials point here. */
  objects: string;
  engine: VolumeEngine;
  keyring: LocalKeyring;
  /** Counting wrappers, by provider name. */
  counting: Map<string, CountingKeyProvider>;
  providers: KeyProviders;
  credentials: CredentialStore;
  backups: CloudBackups;
  keys: KeyService;
  /** Closes the jobs and opens them again: a fresh repository pool, nothing cached. */
  reopenJobs(): Promise<void>;
  /** A directory credential on bucket `bucket` (created) with `prefix`, `kek`, `key_provider`. */
  credential(
    name: string,
    fields: { bucket?: string; prefix?: string; kek?: string; key_provider?: 'local' | 'vault' | 'aws-kms' },
  ): Promise<void>;
  close(): Promise<void>;
}

export async function openHarness(options: HarnessOptions = {}): Promise<KeyHarness> {
  const dataDir = await mkdtemp(join(tmpdir(), 'ferry-keys-'));
  const objects = join(dataDir, 'objects');
  await mkdir(objects, { recursive: true });
  const store = new SqliteStore(join(dataDir, 'cluster.db'));
  const keyring = await openDefaultKeyring(dataDir);
  const counting = new Map<string, CountingKeyProvider>();
  for (const p of [keyring, ...(options.extra ?? [])]) {
    counting.set(p.name, new CountingKeyProvider(options.wrap?.(p) ?? p));
  }
  const providers = new KeyProviders([...counting.values()]);
  const engine = await openEngine({ dataDir, store, keys: volumeKeys({ providers: providers.lookup, keyring }) });
  // As a node: directory credentials of every caller may point under <dataDir>/objects.
  const credentials = new CredentialStore(store, keyring, {
    providers: providers.lookup,
    directories: { roots: [objects], dataDir },
  });
  const open = (): Promise<CloudBackups> =>
    CloudBackups.open({
      blockSource: engine,
      store,
      credentials,
      keys: keyring,
      providers: providers.lookup,
      retry: options.retry ?? { retries: 3, baseDelayMs: 1 },
      repoOptions: {
        packSize: options.packSize ?? MiB,
        ...(options.chunkSize !== undefined && { chunkSize: options.chunkSize }),
      },
      ...(options.keyCacheTtlMs !== undefined && { keyCacheTtlMs: options.keyCacheTtlMs }),
    });
  const serviceOf = (backups: CloudBackups): KeyService =>
    new KeyService({
      keyring,
      providers,
      credentials,
      repositories: backups.jobs.repositories,
      volumes: () => engine.listVolumes(),
    });
  const backups = await open();
  const h: KeyHarness = {
    dataDir,
    clusterStore: store,
    objects,
    engine,
    keyring,
    counting,
    providers,
    credentials,
    backups,
    keys: serviceOf(backups),
    reopenJobs: async () => {
      await h.backups.close();
      h.backups = await open();
      h.keys = serviceOf(h.backups);
    },
    credential: async (name, fields) => {
      const bucket = fields.bucket ?? 'backups';
      await mkdir(join(objects, bucket, fields.prefix ?? ''), { recursive: true });
      await credentials.create({
        name,
        bucket,
        directory_credential: { path: objects },
        ...(fields.prefix !== undefined && { prefix: fields.prefix }),
        ...(fields.kek !== undefined && { kek: fields.kek }),
        ...(fields.key_provider !== undefined && { key_provider: fields.key_provider }),
      });
    },
    close: async () => {
      await h.backups.close();
      await engine.close();
      await store.close();
      await keyring.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
  return h;
}

/** Creates volume `name` with some random data at two places. */
export async function volumeWithData(
  engine: VolumeEngine,
  name: string,
  size = 4 * MiB,
  labels: Record<string, string> = {},
): Promise<void> {
  await engine.createVolume({ name, size, labels });
  const dev = await engine.openExport(name);
  await dev.write(0, randomBytes(256 * 1024));
  await dev.write(size / 2, randomBytes(128 * 1024));
  await dev.flush();
  await dev.close();
}

/** SHA-256 of a volume's whole content. */
export async function digest(engine: VolumeEngine, name: string): Promise<string> {
  const dev = await engine.openExport(name);
  const h = createHash('sha256').update(await dev.read(0, dev.size));
  await dev.close();
  return h.digest('hex');
}

/** Runs a backup job to its end. */
export async function backup(h: KeyHarness, volume: string, credential: string): Promise<JobStatus> {
  const job = await h.backups.jobs.submitBackup({ volume_id: volume, credential_id: credential });
  return h.backups.jobs.wait(job.task_id);
}

/** Runs a restore job to its end. */
export async function restore(h: KeyHarness, backupId: string, credential: string, name: string): Promise<JobStatus> {
  const job = await h.backups.jobs.submitRestore({
    backup_id: backupId,
    credential_id: credential,
    restore_volume_name: name,
  });
  return h.backups.jobs.wait(job.task_id);
}

/** Every file under `dir`, recursively, with its bytes. */
export async function filesUnder(dir: string): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    out.set(path, await readFile(path));
  }
  return out;
}
