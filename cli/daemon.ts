/**
 * `ferry node start`: opens the cluster store (SQLite alone; etcd with `--kvdb` to join a cluster: see
 * cli/cluster-setup.ts), the cluster secrets and the node's replication credentials (cluster mode), the engine, the default keyring (`<dataDir>/keyring`) and the key
 * providers the environment configures (FERRY_VAULT_*, FERRY_KMS_*: see docs/KEYS.md), serves them
 * over NBD and HTTP (volumes, credentials, cloud backups), logs one JSON line per event on stdout, and on SIGTERM/SIGINT
 * closes the API, then NBD, then the backup jobs, the engine, the keyring and the cluster store.
 */
import { randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { InvalidArgumentError } from 'commander';
import {
  BackupScheduler,
  cloudBackupsRunner,
  createApp,
  createLogger,
  DirectorySecrets,
  type Logger,
  MigrationReceiver,
  MigrationService,
  type NodeAuthOptions,
  NodeMetrics,
  PairService,
  parseNbdTlsMode,
  peerApp,
  ScheduleRecords,
  StoreClusterDirectory,
  setUpNbdAccess,
  setUpNodeAuth,
  startApiServer,
} from '../api/index.js';
import {
  CloudBackups,
  CredentialStore,
  DirectoryPolicy,
  directoryRoots,
  type JobStatus,
  KeyService,
} from '../cloudsnap/index.js';
import { missingEnvSettings, missingV8Flags, tuneAllocator } from '../common/native/index.js';
import { type Keyring, keyProvidersFromEnv, openNodeKeyring, volumeKeys } from '../kms/index.js';
import {
  ClusterSecrets,
  loadNodeId,
  NbdServer,
  type NodeCredentials,
  nodeCredentials,
  openEngine,
  RemoteReplicas,
  SpaceGuard,
  serveReplicas,
  type VolumeEngine,
} from '../node/index.js';
import { type ClusterSettingsInput, clusterSettings, openClusterStore, replUrl } from './cluster-setup.js';
import { type HostPort, hostForUrl, parseHostPort, parseSize } from './format.js';

/** Longest lease of a volume's attach lock: how long a dead coordinator keeps others from taking over (F6). */
const ATTACH_LEASE_SECONDS = 5;

/** Where and how the node runs (the cluster settings: see ClusterSettingsInput). */
export interface NodeOptions extends ClusterSettingsInput {
  /** Data directory. Default env FERRY_DATA_DIR, else /var/lib/ferry as root, else ~/.ferry. */
  dataDir?: string;
  /** API listen address `HOST:PORT`. Default env FERRY_API_ADDR, else 127.0.0.1:9001. */
  apiAddr?: string;
  /** NBD listen address `HOST:PORT`. Default env FERRY_NBD_ADDR, else 127.0.0.1:10809. */
  nbdAddr?: string;
  /** NBD TLS mode `off|optional|require` (docs/NBD.md). Default env FERRY_NBD_TLS, else by the NBD address. */
  nbdTls?: string;
  /**
   * Authentication (docs/AUTH.md): on by default with the admin secret `<dataDir>/auth/admin.secret`; `off`
   * (`--auth-off`, env FERRY_AUTH=off) turns it off with a warning; RS256 key, JWKS URL, issuer and audience fall
   * back to FERRY_AUTH_PUBLIC_KEY_FILE, FERRY_AUTH_JWKS_URL, FERRY_AUTH_ISSUER, FERRY_AUTH_AUDIENCE.
   */
  auth?: Omit<NodeAuthOptions, 'dataDir' | 'log' | 'env'>;
  /** Warn (readyz stays ready; status and metrics say `warn`) at this percentage used. Default env FERRY_SPACE_WARN_PERCENT, else 90. */
  spaceWarnPercent?: number;
  /**
   * Directories under which directory credentials may point for every caller, colon-separated
   * (`--directory-roots`). Default env FERRY_DIRECTORY_ROOTS, else `<dataDir>/objects`. Created (0700) when missing.
   */
  directoryRoots?: string;
}

let nodeLogger: Logger | undefined;

/** The node's logger: JSON lines on stdout (pino; secrets redacted; level from FERRY_LOG_LEVEL, default info). */
function logger(): Logger {
  nodeLogger ??= createLogger();
  return nodeLogger;
}

/** Writes one JSON log line. */
export function log(level: 'info' | 'warn' | 'error', msg: string, fields: Record<string, unknown> = {}): void {
  logger()[level](fields, msg);
}

function assertServing(serving: boolean): void {
  if (!serving) throw new Error('the API is not serving (starting or stopping)');
}

/** The data directory when neither --data-dir nor FERRY_DATA_DIR says: /var/lib/ferry as root, else ~/.ferry. */
export function defaultDataDir(): string {
  return process.getuid?.() === 0 ? '/var/lib/ferry' : join(homedir(), '.ferry');
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Steps to undo, last first. */
type Closer = { name: string; close: () => Promise<void> };

async function closeAll(closers: Closer[]): Promise<boolean> {
  let clean = true;
  for (const closer of closers.reverse()) {
    try {
      await closer.close();
      log('info', `${closer.name} closed`);
    } catch (err: unknown) {
      clean = false;
      log('error', `closing ${closer.name} failed`, { error: describe(err) });
    }
  }
  return clean;
}

/** Space thresholds from options and env (FERRY_SPACE_WARN_PERCENT, FERRY_SPACE_MIN_FREE, FERRY_SPACE_RESERVE). */
function spaceSettings(options: NodeOptions): { warnPercent?: number; minFreeBytes?: number; reserveBytes?: number } {
  const env = (name: string): string | undefined => {
    const v = process.env[name];
    return v === undefined || v === '' ? undefined : v;
  };
  const size = (name: string): number | undefined => {
    const v = env(name);
    if (v === undefined) return undefined;
    try {
      return parseSize(v);
    } catch (err: unknown) {
      throw new InvalidArgumentError(`${name}: ${describe(err)}`);
    }
  };
  const warnText = env('FERRY_SPACE_WARN_PERCENT');
  const warnPercent = options.spaceWarnPercent ?? (warnText === undefined ? undefined : Number(warnText));
  if (warnPercent !== undefined && !(warnPercent > 0 && warnPercent <= 100)) {
    throw new InvalidArgumentError(
      `the space warn threshold must be a percentage in (0, 100], not ${warnText ?? warnPercent}`,
    );
  }
  const minFreeBytes = size('FERRY_SPACE_MIN_FREE');
  const reserveBytes = size('FERRY_SPACE_RESERVE');
  return {
    ...(warnPercent !== undefined && { warnPercent }),
    ...(minFreeBytes !== undefined && { minFreeBytes }),
    ...(reserveBytes !== undefined && { reserveBytes }),
  };
}

function listenAddress(flag: string | undefined, envName: string, fallback: string): HostPort {
  if (flag !== undefined) return parseHostPort(flag);
  const fromEnv = process.env[envName];
  if (fromEnv === undefined || fromEnv === '') return parseHostPort(fallback);
  try {
    return parseHostPort(fromEnv);
  } catch (err: unknown) {
    throw new InvalidArgumentError(`${envName}: ${describe(err)}`);
  }
}

/**
 * Resolves on the first SIGTERM or SIGINT. Both handlers go away then, so a second signal ends the process at once
 * (the way out of a close that hangs).
 */
export function stopSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      resolve(signal);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}

/**
 * Runs a node until SIGTERM or SIGINT (one arriving during start-up stops the node as soon as it is up). Rejects when it cannot start (bad address: InvalidArgumentError; port taken,
 * engine failure: Error), after closing whatever it had opened, or when it did not close cleanly.
 */
export async function runNode(options: NodeOptions): Promise<void> {
  const dataDir = options.dataDir ?? process.env.FERRY_DATA_DIR ?? defaultDataDir();
  const apiAddr = listenAddress(options.apiAddr, 'FERRY_API_ADDR', '127.0.0.1:9001');
  const nbdAddr = listenAddress(options.nbdAddr, 'FERRY_NBD_ADDR', '127.0.0.1:10809');
  if (options.nbdTls !== undefined) parseNbdTlsMode(options.nbdTls, '--nbd-tls');
  // Before anything opens: a bad cluster setting starts nothing.
  const settings = clusterSettings(options, apiAddr);

  // Before the engine and the chunk workers allocate: see common/native/malloc.c.
  if (!tuneAllocator()) log('warn', 'the C library is not glibc: memory settings left at their defaults');
  const missing = missingV8Flags();
  if (missing.length > 0)
    log(
      'warn',
      `started without ${missing.join(' ')} (npm start, the systemd unit and the ferry command pass them): a larger heap, and more full collections under load`,
    );
  const unset = missingEnvSettings();
  if (unset.length > 0)
    log(
      'warn',
      `started without ${unset.join(' ')} in the environment (npm start and the systemd unit set it): a malloc arena per thread, a few MiB more memory`,
    );
  const stop = stopSignal();
  // Opened in order engine, NBD, API; closed in reverse: API, NBD, engine.
  const closers: Closer[] = [];
  // Readiness: false until the API listens and again once it starts closing.
  let serving = false;
  let apiUrl: string;
  let nbdUrl: string;
  try {
    log('info', 'opening engine', { data_dir: dataDir });
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    // Before the store: on a full disk this releases the metadata reserve, so the store can open (docs/OPERATIONS.md).
    const space = await SpaceGuard.open({ dataDir, ...spaceSettings(options) });
    const started = await space.status();
    log(started.state === 'ok' ? 'info' : 'warn', 'data directory space', { ...started });
    const { store, clusterSecret } = await openClusterStore(settings, dataDir, log);
    if (settings.etcd !== undefined) {
      log('info', 'cluster store: etcd', {
        cluster_id: settings.etcd.clusterId,
        etcd: settings.etcd.urls,
        namespace: settings.etcd.namespace,
      });
    }
    // Cluster mode: the shared secrets (admin secret, keyring KEKs, the CA), sealed in the store under the cluster
    // secret; undefined on a node alone. A wrong cluster secret fails where one is first opened (DATA_CORRUPTION).
    const secrets =
      settings.etcd !== undefined && clusterSecret !== undefined ? new ClusterSecrets(store, clusterSecret) : undefined;
    let engine: VolumeEngine | undefined;
    let keyring: Keyring | undefined;
    let cloudBackups: CloudBackups | undefined;
    // Cluster mode: the connections to the other nodes' replicas (node/replication/), closed after the engine.
    let remote: RemoteReplicas | undefined;
    // One closer for the engine, the backup jobs that run on it (ended first: they become Failed, "interrupted by a
    // node shutdown"), and what the engine stands on (the connections to other nodes, the default keyring, the
    // cluster store), closed after it.
    closers.push({
      name: 'engine',
      close: async () => {
        try {
          await cloudBackups?.close();
          await engine?.close();
          await remote?.close();
        } finally {
          await keyring?.close();
          await store.close();
        }
      },
    });
    // Alone: <dataDir>/keyring; in a cluster: the cluster's KEKs, this node's own moved in first (docs/KEYS.md).
    keyring = await openNodeKeyring({ dataDir, secrets, log });
    const providers = keyProvidersFromEnv(keyring);
    log('info', 'key providers', { providers: providers.names });
    // Encrypted volumes' data keys are wrapped by these providers, so they open before the engine.
    // The node id keys the layer trees this node holds, and names it as the holder of the volumes it creates.
    const nodeId = await loadNodeId(dataDir);
    // The node id lives in <dataDir>/node-id, the cluster and node records in the cluster store (node/cluster/membership.ts).
    const cluster = await StoreClusterDirectory.open({
      dataDir,
      store,
      heartbeatSeconds: settings.heartbeatSeconds,
      ...(settings.etcd !== undefined && { clusterId: settings.etcd.clusterId }),
      onError: (err) => log('error', 'node announcement failed', { error: describe(err) }),
    });
    // Cluster mode: this node's certificate from the cluster CA for mutual TLS on the replication port.
    let replCredentials: NodeCredentials | undefined;
    if (settings.etcd !== undefined && secrets !== undefined) {
      replCredentials = await nodeCredentials({
        store,
        secrets,
        clusterId: settings.etcd.clusterId,
        nodeId,
        addresses: [...new Set([settings.replAddr.host, settings.replAdvertise.host])],
        dataDir,
      });
      log('info', 'replication credentials issued by the cluster CA', { dir: join(dataDir, 'repl') });
      remote = new RemoteReplicas({ credentials: replCredentials, addressOf: (id) => cluster.replAddress(id) });
    }
    engine = await openEngine({
      dataDir,
      store,
      space,
      nodeId,
      keys: volumeKeys({ providers: providers.lookup, keyring }),
      // Cluster mode: replicas go where the placement rules say (node/cluster/placement.ts) over the live records.
      ...(settings.etcd !== undefined && { placement: cluster.placement }),
      // Cluster mode: the other nodes' replicas, over mutual TLS on their replication ports.
      ...(remote !== undefined && { replicas: remote }),
      // A dead coordinator's volumes can be taken over once its attach lock's lease expired (F6): at most 5 s, so
      // that a client gets its volume back through another node within seconds, however long the heartbeat is.
      attachLeaseSeconds: Math.min(settings.heartbeatSeconds, ATTACH_LEASE_SECONDS),
    });
    if (replCredentials !== undefined) {
      // Cluster mode: this node's replicas, served to the other nodes' coordinators; closed before the engine.
      const served = await serveReplicas({
        host: engine.replicaHost,
        credentials: replCredentials,
        listen: settings.replAddr,
        log: (event, fields) => log('info', event, fields),
      });
      closers.push({ name: 'replication server', close: () => served.close() });
      log('info', 'replication server listening', { repl: replUrl({ ...settings.replAddr, port: served.port }) });
    }
    const roots = directoryRoots(options.directoryRoots, dataDir);
    const directories = new DirectoryPolicy({ roots, dataDir });
    for (const root of roots) await mkdir(root, { recursive: true, mode: 0o700 });
    log('info', 'directory roots', { roots });
    const credentials = new CredentialStore(store, keyring, { providers: providers.lookup, directories });
    const metrics = new NodeMetrics();
    cloudBackups = await CloudBackups.open({
      blockSource: engine,
      store,
      credentials,
      keys: keyring,
      providers: providers.lookup,
      observeStore: metrics.observeStore,
      // Its backups' running markers name this node, so that it clears the ones its dead processes left.
      nodeId,
      warn: (message, fields) => log('warn', message, fields),
    });
    metrics.watchJobs(cloudBackups.jobs);
    metrics.watchSpace(() => space.status());
    cloudBackups.jobs.onJobEnded((job) =>
      log(job.status === 'Failed' ? 'error' : 'info', 'job ended', {
        task_id: job.task_id,
        optype: job.optype,
        status: job.status,
        volume: job.volume_name,
        backup_id: job.backup_id,
        bytes: job.bytes_done,
        info: job.info,
      }),
    );
    const volumesOf = engine;
    const keys = new KeyService({
      keyring,
      providers,
      credentials,
      repositories: cloudBackups.jobs.repositories,
      volumes: () => volumesOf.listVolumes(),
    });
    // Schedules live in the cluster store; every node runs a scheduler, and leases there keep runs single.
    const scheduleRecords = new ScheduleRecords(store);
    const scheduler = new BackupScheduler({
      records: scheduleRecords,
      runner: cloudBackupsRunner(cloudBackups),
      nodeId: randomUUID(),
      log: (level, msg, fields) => log(level, msg, fields),
      // In a cluster a run goes to a node that holds the volume: where it is attached, else an in-sync replica.
      ...(settings.etcd !== undefined && { canRun: (volumeId: string) => holdsForBackup(volumesOf, nodeId, volumeId) }),
    });

    // Authentication first: it creates the admin secret (in a cluster, writes the cluster's), from which NBD TLS-PSK
    // keys derive (nothing more stored).
    const auth = await setUpNodeAuth({ ...options.auth, dataDir, secrets, log });
    const nbdAccess = await setUpNbdAccess({
      dataDir,
      mode: options.nbdTls,
      listenHost: nbdAddr.host,
      engine,
      store,
      log,
    });
    const { tls, authorize } = nbdAccess;
    const served = engine;
    const jobs = cloudBackups.jobs;
    metrics.volumes.watch({
      listVolumes: () => served.listVolumes(),
      lastBackups: async () => lastBackups(await jobs.list()),
    });
    const nbd = new NbdServer(engine, {
      log: (event, fields) => log('info', event, fields),
      tls,
      authorize,
      // Snapshot exports (VOLUME@SNAPSHOT) count toward their volume.
      observeIo: async (exportName) => {
        const volume = await served.inspectVolume(exportName.split('@')[0] ?? exportName);
        return metrics.volumes.observer(volume.name, volume.id);
      },
    });
    const bound = await nbd.listen(nbdAddr.host, nbdAddr.port);
    closers.push({ name: 'nbd server', close: () => nbd.close() });
    nbdUrl = `nbd://${hostForUrl(bound.host)}:${bound.port}`;

    // Cluster pairs and migrations (docs/MIGRATION.md): pair keys sealed in the store in a cluster, else files of
    // the data directory; the API port also serves the paired clusters' link (TLS-PSK).
    let localApiUrl = '';
    const pairs = await PairService.open({
      store,
      vault: secrets ?? new DirectorySecrets(join(dataDir, 'pairs')),
      cluster: () => cluster.cluster(),
      localUrl: () => localApiUrl,
      warn: (message, fields) => log('warn', message, fields),
    });
    // A volume a migration left filling here is removed once its source says the migration ended without it.
    const receiver = new MigrationReceiver(engine, async (pairId, taskId) =>
      pairs.link(await pairs.pair(pairId)).call<{ status: string }>('GET', `/peer/v1/migrations/${taskId}`),
    );
    const migrations = await MigrationService.open({
      store,
      engine,
      pairs,
      nodeId,
      warn: (message, fields) => log('warn', message, fields),
    });
    closers.push({
      name: 'migrations',
      close: async () => {
        await migrations.close();
        await receiver.close();
        await pairs.close();
      },
    });

    const app = createApp({
      ...auth,
      pairs,
      migrations,
      ownership: store,
      engine,
      credentials,
      cloudBackups,
      keys,
      schedules: { records: scheduleRecords, changed: () => scheduler.poke() },
      cluster,
      logError: (msg, fields) => log('error', msg, fields),
      logger: logger(),
      metrics,
      ...(nbdAccess.psk !== undefined && { nbdPsk: nbdAccess.psk }),
      readiness: [
        { name: 'cluster_store', check: async () => void (await store.get('/ferry/readyz')) },
        { name: 'api', check: async () => assertServing(serving) },
      ],
    });
    const api = await startApiServer(app, apiAddr.host, apiAddr.port, {
      app: peerApp({ pairs, receiver, migrations, cluster: () => cluster.cluster() }),
      keyOf: (identity) => pairs.keyOf(identity),
    });
    localApiUrl = api.url;
    serving = true;
    closers.push({
      name: 'api server',
      close: () => {
        serving = false;
        return api.close();
      },
    });
    apiUrl = api.url;
    // Closed first: no new scheduled run starts while the node stops (the job manager ends the running ones).
    scheduler.start();
    closers.push({ name: 'backup scheduler', close: () => scheduler.stop() });
    const addresses = {
      nbd: nbdUrl,
      ...(settings.etcd !== undefined && { repl: replUrl(settings.replAdvertise) }),
    };
    const announce = async (): Promise<void> => {
      const now = await space.status();
      await cluster.announce(api.url, settings.labels, {
        addresses,
        capacity: { size_bytes: now.size_bytes, free_bytes: now.free_bytes },
      });
    };
    await announce();
    // The capacity other nodes place replicas by: announced again every 30 s.
    const refresh = setInterval(() => {
      announce().catch((err: unknown) => log('warn', 'node announcement failed', { error: describe(err) }));
    }, 30_000);
    refresh.unref();
    // Closed before the API and the store: the node's record (bound to its heartbeat lease) vanishes at once.
    closers.push({
      name: 'cluster membership',
      close: () => {
        clearInterval(refresh);
        return cluster.leave();
      },
    });
  } catch (err: unknown) {
    log('error', 'ferry node failed to start', { error: describe(err) });
    await closeAll(closers);
    throw new Error(`ferry node failed to start: ${describe(err)}`, { cause: err });
  }

  log('info', 'ferry node ready', { api: apiUrl, nbd: nbdUrl, data_dir: dataDir });
  const signal = await stop;
  log('info', 'ferry node stopping', { signal });
  const clean = await closeAll(closers);
  log('info', 'ferry node stopped', { clean });
  if (!clean) throw new Error('ferry node did not stop cleanly; see the log lines above');
}

/** Whether this node may back up `volumeId`: it coordinates it, or it holds an in-sync replica of a detached one. */
async function holdsForBackup(engine: VolumeEngine, nodeId: string, volumeId: string): Promise<boolean> {
  const volume = await engine.inspectVolume(volumeId);
  if (volume.attached_node !== undefined) return volume.attached_node === nodeId;
  return (volume.replicas ?? []).some((r) => r.node_id === nodeId && r.state === 'in-sync');
}

/** When each volume's last backup that ended Done completed (epoch ms, by volume id). */
function lastBackups(jobs: readonly JobStatus[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const job of jobs) {
    if (job.optype !== 'Backup' || job.status !== 'Done' || job.completed_time === undefined) continue;
    const at = Date.parse(job.completed_time);
    if (Number.isFinite(at) && at > (out.get(job.src_volume_id) ?? 0)) out.set(job.src_volume_id, at);
  }
  return out;
}
