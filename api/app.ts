/**
 * The HTTP API application: one Hono app per node, routes under `/v1`, every error shaped `{ code, message, field? }`.
 */

import { Hono, type MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { CloudBackups, CredentialStore, KeyService } from '../cloudsnap/index.js';
import { MemoryStore, type VolumeEngine } from '../node/index.js';
import { credentialOwners } from './auth/credential-owners.js';
import {
  authRoutes,
  BackupAccess,
  NbdIdentities,
  type OwnershipBackend,
  OwnershipStore,
  ResourceAccess,
} from './auth/index.js';
import type { ClusterDirectory } from './cluster-directory.js';
import { withoutEngine } from './engine-required.js';
import { type ApiErrorLogger, errorResponse, logToStderr, payloadTooLarge, routeNotFound } from './errors.js';
import { type ForwardingOptions, forwardElsewhere } from './forward.js';
import { engineCheck, healthRoutes, type ReadinessCheck, spaceCheck } from './health.js';
import type { Logger } from './log.js';
import type { NodeMetrics } from './metrics.js';
import type { MigrationService } from './migrate/service.js';
import { API_OPERATIONS } from './operations.js';
import type { PairService } from './pairs/service.js';
import { requestLog } from './request-log.js';
import { cloudBackupGroupRoutes } from './routes/cloudbackup-group.js';
import { cloudBackupScheduleRoutes } from './routes/cloudbackup-schedules.js';
import { cloudBackupRoutes } from './routes/cloudbackups.js';
import { clusterRoutes } from './routes/cluster.js';
import { clusterPairRoutes } from './routes/cluster-pairs.js';
import { credentialRoutes } from './routes/credentials.js';
import { identityRoutes, servedServices } from './routes/identities.js';
import { keyRoutes } from './routes/keys.js';
import { metricsRoutes } from './routes/metrics.js';
import { migrateRoutes } from './routes/migrate.js';
import { nodeRoutes } from './routes/nodes.js';
import { referenceRoutes } from './routes/reference.js';
import { type ScheduleApi, schedulePolicyRoutes } from './routes/schedule-policies.js';
import { snapshotRoutes } from './routes/snapshots.js';
import { volumeRoutes } from './routes/volumes.js';
import { closeOnUnreadBody } from './unread-body.js';

/** Largest accepted request body by default: 1 MiB. */
export const DEFAULT_MAX_BODY_BYTES = 1024 * 1024;

export interface AppOptions {
  /**
   * The node's volume engine: the volume and snapshot routes, volume ownership, readiness. Default: none (the
   * serverless handler); what needs it then answers 503 UNAVAILABLE (engine-required.ts).
   */
  engine?: VolumeEngine;
  /** Cloud credentials (`/v1/credentials`). Default: none; those routes then answer 503 UNAVAILABLE. */
  credentials?: CredentialStore;
  /** Cloud backups and restores (`/v1/cloudbackups`). Default: none; those routes then answer 503 UNAVAILABLE. */
  cloudBackups?: CloudBackups;
  /** KEK operations (`/v1/keys`: list, create, rotate, destroy). Default: none; those routes then answer 503. */
  keys?: KeyService;
  /** Schedule policies and cloud backup schedules (`/v1/schedulepolicies`, `/v1/cloudbackups/schedules`); default none. */
  schedules?: ScheduleApi;
  /** This node and its cluster (`/v1/clusters`, `/v1/nodes`). Default: none; those routes then answer 503. */
  cluster?: ClusterDirectory;
  /**
   * Authentication seam: middleware run before every `/v1` route (e.g. bearer tokens, later). It should throw a
   * FerryError UNAUTHENTICATED or PERMISSION_DENIED to refuse. Default: none (no authentication yet).
   */
  authenticate?: MiddlewareHandler;
  /**
   * Where ownership records live (`/ferry/ownership/...`, see docs/AUTH.md): the node's cluster store. Default: in
   * memory (lost at exit). Ownership is enforced only when `authenticate` leaves a principal on the request.
   */
  ownership?: OwnershipBackend;
  /** Largest request body in bytes; larger bodies get 413. Default DEFAULT_MAX_BODY_BYTES (1 MiB). */
  maxBodyBytes?: number;
  /** Where unexpected errors (answered as 500 INTERNAL) are logged, with their stack. Default: a JSON line on stderr. */
  logError?: ApiErrorLogger;
  /** Access log (one line per request, with its `x-request-id`). Default: none (request ids are still set). */
  logger?: Logger;
  /** Served at `GET /metrics` (outside `/v1`), and fed with each request. Default: no `/metrics` route. */
  metrics?: NodeMetrics;
  /** What `GET /readyz` checks besides the engine (e.g. the cluster store, the API serving). Default: none. */
  readiness?: readonly ReadinessCheck[];
  /** The NBD TLS-PSK key of an identity (`POST /v1/auth/nbd-key`). Default: none; that route answers 503. */
  nbdPsk?: (identity: string) => Buffer;
  /**
   * Forwarding of requests that must run on another node (api/forward.ts), over `cluster`'s node records: its
   * timeout and fetch, or false for none. Default: on whenever `cluster` is given.
   */
  forwarding?: false | Omit<ForwardingOptions, 'directory'>;
  /** Cluster pairs (`/v1/clusterpairs`). Default: none; those routes then answer 503 UNAVAILABLE. */
  pairs?: PairService;
  /** Live migrations to paired clusters (`/v1/volumemigrate`). Default: none; those routes answer 503. */
  migrations?: MigrationService;
}

/** Builds the API application for `options.engine` (or for a process without one). */
export function createApp(options: AppOptions): Hono {
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const logError = options.logError ?? logToStderr;
  const app = new Hono();
  const ownership = options.ownership ?? new MemoryStore();
  const access = new ResourceAccess(new OwnershipStore(ownership));
  // A repository opens only through credentials of its owner (or shared with them): owners come from these records.
  options.cloudBackups?.jobs.repositories.bindings?.setOwners(credentialOwners(access.records));
  app.onError((err, c) => errorResponse(c, err, logError));
  app.notFound(routeNotFound);
  const metrics = options.metrics;
  app.use(
    '*',
    requestLog({
      ...(options.logger !== undefined && { logger: options.logger }),
      ...(metrics !== undefined && { onFinished: metrics.observeRequest }),
    }),
  );
  // onError sees only Error instances; this catches anything else a handler throws.
  app.use('*', async (c, next) => {
    try {
      await next();
    } catch (err: unknown) {
      c.res = errorResponse(c, err, logError);
    }
  });
  app.use('*', closeOnUnreadBody());
  // The API document and reference page describe no data: served before authentication.
  app.route('/v1', referenceRoutes(API_OPERATIONS));
  // Authentication comes before anything reads or limits a body: an unauthenticated caller gets 401 whatever it sends.
  if (options.authenticate !== undefined) app.use('/v1/*', options.authenticate);
  app.use('*', bodyLimit({ maxSize: maxBodyBytes, onError: (c) => payloadTooLarge(c, maxBodyBytes) }));
  // After the body limit: a forwarded request's body is the one the handler read (within the limit).
  if (options.cluster !== undefined && options.forwarding !== false) {
    app.use('/v1/*', forwardElsewhere({ ...options.forwarding, directory: options.cluster }));
  }
  // Probes and scrapes stay outside /v1: no authentication.
  const engine = options.engine;
  const space = engine?.spaceStatus?.bind(engine);
  const checks = [
    ...(engine !== undefined ? [engineCheck(engine)] : []),
    ...(space !== undefined ? [spaceCheck(space)] : []),
  ];
  app.route(
    '/',
    healthRoutes({ checks: [...checks, ...(options.readiness ?? [])], ...(space !== undefined && { space }) }),
  );
  if (metrics !== undefined) app.route('/', metricsRoutes(metrics));
  app.route('/v1', identityRoutes(servedServices(options)));
  app.route('/v1', clusterRoutes(options.cluster));
  app.route('/v1', nodeRoutes(options.cluster));
  if (engine !== undefined) {
    app.route('/v1', volumeRoutes(engine, access, options.schedules, options.cluster));
    app.route('/v1', snapshotRoutes(engine, access));
  } else {
    app.use('/v1/volumes', withoutEngine());
    app.use('/v1/volumes/*', withoutEngine());
  }
  app.route('/v1', credentialRoutes(options.credentials, access, options.schedules));
  app.route('/v1', schedulePolicyRoutes(options.schedules));
  const backupAccess = new BackupAccess(access, engine, options.credentials);
  app.route('/v1', cloudBackupScheduleRoutes(options.schedules, backupAccess, access, options.credentials));
  app.route('/v1', cloudBackupGroupRoutes(options.cloudBackups, backupAccess));
  app.route('/v1', cloudBackupRoutes(options.cloudBackups, backupAccess));
  app.route('/v1', keyRoutes(options.keys, access));
  app.route('/v1', clusterPairRoutes(options.pairs));
  app.route('/v1', migrateRoutes(options.migrations));
  const nbdPsk = options.nbdPsk;
  const nbd = nbdPsk === undefined ? undefined : { psk: nbdPsk, identities: new NbdIdentities(ownership) };
  app.route('/v1', authRoutes(access, engine, options.credentials, nbd));
  return app;
}
