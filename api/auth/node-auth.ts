/**
 * A node's authentication from its flags and environment. On by default: the admin secret under the data directory
 * (created on the first start; in a cluster, the cluster's, written there at each start: cluster-admin-secret.ts)
 * verifies HS256 tokens; RS256 tokens are accepted from a PEM public key and/or a JWKS
 * URL when configured. `--auth-off` or FERRY_AUTH=off turns it off, with a warning line in the log. No secret and no
 * token is ever logged: only paths, URLs and whether the secret was created.
 */
import { readFile } from 'node:fs/promises';
import type { MiddlewareHandler } from 'hono';
import { FerryError } from '../../common/index.js';
import type { ClusterSecrets } from '../../node/index.js';
import { type AdminSecret, ensureAdminSecret, readSecretFile } from './admin-secret.js';
import { adoptClusterAdminSecret } from './cluster-admin-secret.js';
import { bearerAuth } from './middleware.js';
import { formatTtl, maxTokenTtlSeconds } from './token-lifetime.js';
import { createTokenVerifier, type TokenVerifierOptions } from './verifier.js';

/** Flags of `ferry node start`; each falls back to its environment variable. */
export interface NodeAuthOptions {
  /** The node's data directory: the admin secret is `<dataDir>/auth/admin.secret`. */
  dataDir: string;
  /** `--auth-off`; env FERRY_AUTH=off. Default false. */
  off?: boolean;
  /** `--auth-public-key <file>`: RS256 public key, PEM. Env FERRY_AUTH_PUBLIC_KEY_FILE. Default none. */
  publicKeyFile?: string;
  /** `--auth-jwks-url <url>`: JWKS of an RS256 issuer. Env FERRY_AUTH_JWKS_URL. Default none. */
  jwksUrl?: string;
  /** `--auth-issuer <iss>`: the `iss` RS256 tokens must carry. Env FERRY_AUTH_ISSUER. Default not checked. */
  issuer?: string;
  /** `--auth-audience <aud>`: the `aud` RS256 tokens must carry. Env FERRY_AUTH_AUDIENCE. Default not checked. */
  audience?: string;
  /**
   * `--auth-max-token-ttl <duration>`: longest lifetime of an accepted token (e.g. `8h`, `7d`). Env
   * FERRY_AUTH_MAX_TOKEN_TTL. Default 24h.
   */
  maxTokenTtl?: string;
  /** More HS256 secret files (comma-separated in env FERRY_AUTH_SECRET_FILES). Default none. */
  secretFiles?: string[];
  /**
   * The cluster's sealed secrets: the admin secret is then the cluster's (`auth/admin-secret`), the same on every
   * node, written to `<dataDir>/auth/admin.secret` at each start, even with authentication off (NBD TLS-PSK keys
   * derive from it). Default none: a node alone, its own admin secret.
   */
  secrets?: ClusterSecrets;
  /** Environment to read. Default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Log line writer. */
  log: (level: 'info' | 'warn', msg: string, fields?: Record<string, unknown>) => void;
}

/** What createApp needs: the middleware, or none when authentication is off. */
export interface NodeAuth {
  authenticate?: MiddlewareHandler;
}

function setting(flag: string | undefined, env: NodeJS.ProcessEnv, name: string): string | undefined {
  if (flag !== undefined && flag !== '') return flag;
  const value = env[name];
  return value === undefined || value === '' ? undefined : value;
}

/** Reads the settings, creates the admin secret if needed, and builds the middleware. */
export async function setUpNodeAuth(options: NodeAuthOptions): Promise<NodeAuth> {
  const env = options.env ?? process.env;
  const mode = (env.FERRY_AUTH ?? '').trim().toLowerCase();
  if (mode !== '' && mode !== 'on' && mode !== 'off') {
    throw new FerryError('INVALID_ARGUMENT', `FERRY_AUTH: "${mode}" is neither on nor off`);
  }
  // In a cluster the admin secret is the cluster's whatever the mode: NBD TLS-PSK keys derive from it.
  const clusterAdmin =
    options.secrets === undefined
      ? undefined
      : await adoptClusterAdminSecret({ dataDir: options.dataDir, secrets: options.secrets, log: options.log });
  if (options.off === true || mode === 'off') {
    options.log('warn', 'authentication is OFF: every API caller acts as system.admin; never expose this node', {
      reason: options.off === true ? '--auth-off' : 'FERRY_AUTH=off',
    });
    return {};
  }

  const maxLifetimeSeconds = maxTokenTtlSeconds(options.maxTokenTtl, env);
  const admin: AdminSecret = clusterAdmin ?? (await ensureAdminSecret(options.dataDir));
  if (admin.looseMode) {
    options.log('warn', 'the admin secret is readable by group or others; chmod 600 it', { path: admin.path });
  }
  const extraFiles = options.secretFiles ?? setting(undefined, env, 'FERRY_AUTH_SECRET_FILES')?.split(',') ?? [];
  const sharedSecrets = [admin.secret];
  for (const file of extraFiles.map((f) => f.trim()).filter((f) => f !== '')) {
    sharedSecrets.push(await readSecretFile(file));
  }
  const publicKeyFile = setting(options.publicKeyFile, env, 'FERRY_AUTH_PUBLIC_KEY_FILE');
  const jwksUrl = setting(options.jwksUrl, env, 'FERRY_AUTH_JWKS_URL');
  const issuer = setting(options.issuer, env, 'FERRY_AUTH_ISSUER');
  const audience = setting(options.audience, env, 'FERRY_AUTH_AUDIENCE');
  const verifierOptions: TokenVerifierOptions = { sharedSecrets, maxLifetimeSeconds };
  if (publicKeyFile !== undefined) {
    try {
      verifierOptions.publicKeyPem = await readFile(publicKeyFile, 'utf8');
    } catch (err: unknown) {
      throw new FerryError('INVALID_ARGUMENT', `cannot read the RS256 public key file ${publicKeyFile}`, {
        cause: err,
      });
    }
  }
  if (jwksUrl !== undefined) verifierOptions.jwksUrl = jwksUrl;
  if (issuer !== undefined) verifierOptions.issuer = issuer;
  if (audience !== undefined) verifierOptions.audience = audience;
  const verifier = await createTokenVerifier(verifierOptions);
  options.log('info', 'authentication on', {
    admin_secret_path: admin.path,
    admin_secret_created: admin.created,
    admin_secret_scope: clusterAdmin === undefined ? 'node' : 'cluster',
    hs256_secrets: sharedSecrets.length,
    max_token_ttl: formatTtl(maxLifetimeSeconds),
    ...(publicKeyFile !== undefined && { rs256_public_key: publicKeyFile }),
    ...(jwksUrl !== undefined && { rs256_jwks_url: jwksUrl }),
    ...(issuer !== undefined && { issuer }),
    ...(audience !== undefined && { audience }),
  });
  return { authenticate: bearerAuth(verifier) };
}
