/**
 * Every operation of the HTTP API, in the order the reference shows them. Each is defined once, next to its handler
 * (api/routes/, api/auth/routes.ts, api/health.ts); the OpenAPI document, the Lambda's split and the fuzz test read
 * this list, and a test checks it against the routes the app registers, both ways.
 */
import { authOperations } from './auth/routes.js';
import { healthOperations } from './health.js';
import type { ApiOperation } from './operation.js';
import { cloudBackupGroupOperations } from './routes/cloudbackup-group.js';
import { cloudBackupScheduleOperations } from './routes/cloudbackup-schedules.js';
import { cloudBackupOperations } from './routes/cloudbackups.js';
import { clusterOperations } from './routes/cluster.js';
import { clusterPairOperations } from './routes/cluster-pairs.js';
import { credentialOperations } from './routes/credentials.js';
import { identityOperations } from './routes/identities.js';
import { keyOperations } from './routes/keys.js';
import { metricsOperations } from './routes/metrics.js';
import { migrateOperations } from './routes/migrate.js';
import { nodeOperations } from './routes/nodes.js';
import { referenceOperations } from './routes/reference.js';
import { schedulePolicyOperations } from './routes/schedule-policies.js';
import { snapshotOperations } from './routes/snapshots.js';
import { volumeOperations } from './routes/volumes.js';

/** The API's operations. */
export const API_OPERATIONS: readonly ApiOperation[] = [
  ...identityOperations,
  ...referenceOperations,
  ...healthOperations,
  ...metricsOperations,
  ...clusterOperations,
  ...nodeOperations,
  ...volumeOperations,
  ...snapshotOperations,
  ...credentialOperations,
  ...cloudBackupOperations,
  ...cloudBackupGroupOperations,
  ...schedulePolicyOperations,
  ...cloudBackupScheduleOperations,
  ...authOperations,
  ...keyOperations,
  ...clusterPairOperations,
  ...migrateOperations,
];
