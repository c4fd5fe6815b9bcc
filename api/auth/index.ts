/** Public face of API authentication: token verification, minting, the admin secret, roles and ownership. */

export { ResourceAccess } from './access.js';
export {
  type AdminSecret,
  adminSecretPath,
  ensureAdminSecret,
  readAdminSecret,
  readSecretFile,
} from './admin-secret.js';
export { BackupAccess } from './backup-access.js';
export {
  type AdoptAdminSecretOptions,
  adoptClusterAdminSecret,
  CLUSTER_ADMIN_SECRET,
  type ClusterAdminSecret,
} from './cluster-admin-secret.js';
export { principalOf } from './context.js';
export { bearerAuth, bearerToken } from './middleware.js';
export { type MintOptions, mintToken, type TokenClaims } from './mint.js';
export {
  NBD_IDENTITY_PREFIX,
  type NbdAccess,
  NbdIdentities,
  nbdAuthorizer,
  nbdPskKey,
  parseNbdTlsMode,
  setUpNbdAccess,
} from './nbd-access.js';
export { type NodeAuth, type NodeAuthOptions, setUpNodeAuth } from './node-auth.js';
export {
  ACCESS_TYPES,
  type AccessControl,
  type AccessType,
  type Ownership,
  permits,
  type ResourceKind,
  type ResourceRef,
} from './ownership.js';
export { OWNERSHIP_PREFIX, type OwnershipBackend, OwnershipStore } from './ownership-store.js';
export { PUBLIC_PATHS, type RouteAction, routeAction } from './policy.js';
export { type Principal, ROLE_ADMIN, ROLE_USER, ROLE_VIEW, ROLES } from './principal.js';
export { authRoutes, type NbdKeyIssuer } from './routes.js';
export {
  checkTokenLifetime,
  DEFAULT_MAX_TOKEN_TTL_SECONDS,
  formatTtl,
  MAX_TOKEN_TTL_ENV,
  MAX_TTL_SECONDS,
  maxTokenTtlSeconds,
  parseTtl,
} from './token-lifetime.js';
export { createTokenVerifier, LOCAL_ISSUER, type TokenVerifier, type TokenVerifierOptions } from './verifier.js';
