/** Public face of the HTTP API. */

export type {
  BackupCatalog,
  CreateCredentialRequest,
  CredentialInfo,
  CredentialProvider,
  DestroyKeyResult,
  GcResult,
  JobOpType,
  JobStatus,
  JobStatusType,
  RepairResult,
  RetentionRules,
  RotatedRepository,
  RotateKeyResult,
  VerifyJobReport,
  VerifyProblem,
  VerifyResult,
} from '../cloudsnap/index.js';
export type { LocalKekInfo } from '../kms/index.js';
export { type AppOptions, createApp, DEFAULT_MAX_BODY_BYTES } from './app.js';
export {
  type AccessControl,
  type AccessType,
  adminSecretPath,
  adoptClusterAdminSecret,
  bearerAuth,
  CLUSTER_ADMIN_SECRET,
  createTokenVerifier,
  DEFAULT_MAX_TOKEN_TTL_SECONDS,
  ensureAdminSecret,
  formatTtl,
  LOCAL_ISSUER,
  MAX_TOKEN_TTL_ENV,
  MAX_TTL_SECONDS,
  maxTokenTtlSeconds,
  mintToken,
  NbdIdentities,
  type NodeAuthOptions,
  nbdAuthorizer,
  nbdPskKey,
  OWNERSHIP_PREFIX,
  type Ownership,
  type Principal,
  parseNbdTlsMode,
  parseTtl,
  ROLE_ADMIN,
  ROLE_USER,
  ROLE_VIEW,
  readAdminSecret,
  setUpNbdAccess,
  setUpNodeAuth,
  type TokenClaims,
  type TokenVerifier,
  type TokenVerifierOptions,
} from './auth/index.js';
export type { CloudBackupCatalogView, CloudBackupInfoView } from './cloudbackup-views.js';
export {
  type ClusterDirectory,
  type ClusterRecord,
  type NodeRecord,
  StoreClusterDirectory,
} from './cluster-directory.js';
export { type ApiErrorLogger, type ErrorBody, errorBody, HTTP_STATUS_BY_CODE, PAYLOAD_TOO_LARGE } from './errors.js';
export {
  DEFAULT_FORWARD_TIMEOUT_MS,
  FORWARDED_BY_HEADER,
  FORWARDED_TO_HEADER,
  type ForwardingOptions,
} from './forward.js';
export {
  checkReadiness,
  engineCheck,
  type HealthOptions,
  healthRoutes,
  type ReadinessCheck,
  type ReadinessReport,
} from './health.js';
export {
  createServerlessApp,
  type ServerlessApp,
  type ServerlessOptions,
  serverlessOptionsFromEnv,
} from './lambda/serverless-app.js';
export { LOCALITY_SCORES, RACK_LABEL, rankNodes, ZONE_LABEL } from './locality.js';
export {
  createLogger,
  isSecretField,
  LOG_LEVELS,
  type LogContext,
  type Logger,
  type LoggerSettings,
  type LogLevel,
  logContext,
  REDACTED,
  redact,
  SECRET_FIELDS,
  scrubText,
} from './log.js';
export { type JobSource, NodeMetrics, type NodeMetricsOptions } from './metrics.js';
export { MIGRATION_LABEL, MigrationReceiver } from './migrate/receiver.js';
export type { MigrationRecord, MigrationStage, MigrationStatus } from './migrate/records.js';
export { MigrationService, type MigrationServiceOptions, type StartRequest } from './migrate/service.js';
export { type JsonSchema, type OpenApiDocument, toJsonSchema } from './openapi/index.js';
export type { ApiOperation, HttpMethod } from './operation.js';
export { API_OPERATIONS } from './operations.js';
export { peerApp } from './pairs/peer-app.js';
export type { PairRecord } from './pairs/records.js';
export { DirectorySecrets, type SecretVault } from './pairs/secret-vault.js';
export { DEFAULT_TOKEN_TTL_SECONDS, PairService, type PairServiceOptions, type PairStatus } from './pairs/service.js';
export { type FinishedRequest, REQUEST_ID_HEADER, type RequestLogOptions, requestLog } from './request-log.js';
export type { CloudBackupScheduleView } from './routes/cloudbackup-schedules.js';
export {
  BackupScheduler,
  type CloudBackupSchedule,
  cloudBackupsRunner,
  type ScheduleInterval,
  type SchedulePolicy,
  ScheduleRecords,
  WEEKDAYS,
} from './schedules/index.js';
export {
  enumerateCloudBackupsResponseSchema,
  type LocalityResponse,
  MAX_HA_LEVEL,
  MAX_LABELS,
  MAX_VOLUME_SIZE,
  NAME_MAX_LENGTH,
  SIZE_ALIGNMENT,
} from './schemas/index.js';
export type { MigrateInfoView, PairInfoView } from './schemas/pairs.js';
export { type PeerListener, type RunningApiServer, startApiServer } from './server.js';
export { FERRY_VERSION, OPENSTORAGE_SDK_VERSION } from './version.js';
export type { InspectView, ReplicaView, VolumeStateName, VolumeStatusName, VolumeView } from './views.js';
