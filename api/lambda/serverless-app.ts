/**
 * The API as a serverless function (AWS Lambda behind API Gateway). A function has no block engine and no disk that
 * outlives it, so it splits the API in two:
 *
 * - Catalog reads run in the function, on the same app and CloudBackups code a node runs: backup enumerate, catalog
 *   and size read the repository straight from the object store with the one credential the function is configured
 *   with (FERRY_CREDENTIAL), unwrapping its master secret with the credential's key provider. Also served: version,
 *   capabilities, the credential's inspect and enumerate, the OpenAPI document and reference page, /healthz.
 * - Everything else (restores above all: a restore writes into a new volume, which lives on a node) is forwarded to a
 *   node's API (FERRY_NODE_API_URL) unchanged, with its Authorization header, and the node's answer is returned as it
 *   is; the node validates, authenticates and runs it. Without a node URL those requests answer 503 saying so.
 */
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Hono, type MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { CloudBackups, CredentialStore } from '../../cloudsnap/index.js';
import { FerryError } from '../../common/index.js';
import { keyProvidersFromEnv, type LocalKeyring, openDefaultKeyring } from '../../kms/index.js';
import { MemoryStore } from '../../node/index.js';
import { createApp, DEFAULT_MAX_BODY_BYTES } from '../app.js';
import { type ApiErrorLogger, errorResponse, logToStderr, payloadTooLarge, routeNotFound } from '../errors.js';
import { API_OPERATIONS } from '../operations.js';
import { createCredentialSchema } from '../schemas/index.js';
import { parseWith } from '../validate.js';
import { forwardTo } from './forward.js';

/** Operations (operationIds of api/operations.ts) the function answers itself; the rest go to the node. */
export const LOCAL_OPERATIONS: ReadonlySet<string> = new Set([
  'healthz',
  'identityVersion',
  'identityCapabilities',
  'openApiDocument',
  'apiReference',
  'credentialEnumerate',
  'credentialInspect',
  'cloudBackupEnumerateWithFilters',
  'cloudBackupCatalog',
  'cloudBackupSize',
]);

type Env = Readonly<Record<string, string | undefined>>;

/** How the function runs. */
export interface ServerlessOptions {
  /**
   * The credential repositories are read with: the body of `POST /v1/credentials` (validated with the same schema).
   * Requests name it by its `name`.
   */
  credential: unknown;
  /**
   * Directory whose `keyring/` holds the local keyring, for a credential whose `key_provider` is `local` (a copy of the
   * node's `<dataDir>/keyring`, e.g. on EFS). Default `<tmpdir>/ferry`: a fresh keyring, so only credentials under
   * `aws-kms` or `vault` can be read.
   */
  dataDir?: string;
  /** Base URL of the node API that forwarded requests go to, e.g. `https://node-1.example.com:9001`. Default: none. */
  nodeApiUrl?: string;
  /** Environment the key providers are configured from (FERRY_KMS_*, FERRY_VAULT_*). Default process.env. */
  env?: Env;
  /** The fetch used to forward. Default the global fetch. */
  fetch?: typeof fetch;
  /** Time a forwarded request may take, in ms. Default 25,000 (under API Gateway's 29 s limit). */
  forwardTimeoutMs?: number;
  /** Largest request body. Default DEFAULT_MAX_BODY_BYTES (1 MiB). */
  maxBodyBytes?: number;
  /** Where unexpected errors are logged. Default: a JSON line on stderr (CloudWatch Logs). */
  logError?: ApiErrorLogger;
  /**
   * Bearer-token check run before every `/v1` request (the stand-alone process, `ferry api serve`, uses the node's).
   * Default none: in Lambda the API gateway's JWT authorizer checks tokens, and the node checks forwarded ones again.
   */
  authenticate?: MiddlewareHandler;
}

/** The function's app and what it opened. */
export interface ServerlessApp {
  app: Hono;
  close(): Promise<void>;
}

/** Options from the function's environment: FERRY_CREDENTIAL (JSON), FERRY_NODE_API_URL, FERRY_DATA_DIR. */
export function serverlessOptionsFromEnv(env: Env): ServerlessOptions {
  const text = env.FERRY_CREDENTIAL;
  if (text === undefined || text.trim() === '') {
    throw new FerryError(
      'INVALID_ARGUMENT',
      'FERRY_CREDENTIAL: set it to the JSON of a credential (as POST /v1/credentials takes)',
      {
        field: 'FERRY_CREDENTIAL',
      },
    );
  }
  let credential: unknown;
  try {
    credential = JSON.parse(text);
  } catch (err: unknown) {
    throw new FerryError('INVALID_ARGUMENT', 'FERRY_CREDENTIAL: not valid JSON', {
      field: 'FERRY_CREDENTIAL',
      cause: err,
    });
  }
  const timeout = env.FERRY_FORWARD_TIMEOUT_MS;
  return {
    credential,
    env,
    ...(env.FERRY_DATA_DIR && { dataDir: env.FERRY_DATA_DIR }),
    ...(env.FERRY_NODE_API_URL && { nodeApiUrl: env.FERRY_NODE_API_URL }),
    ...(timeout && /^[0-9]{1,7}$/.test(timeout) && { forwardTimeoutMs: Number(timeout) }),
  };
}

function checkNodeUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (err: unknown) {
    throw new FerryError('INVALID_ARGUMENT', `FERRY_NODE_API_URL: not a URL: ${url}`, {
      field: 'FERRY_NODE_API_URL',
      cause: err,
    });
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new FerryError('INVALID_ARGUMENT', 'FERRY_NODE_API_URL: must be an http or https URL', {
      field: 'FERRY_NODE_API_URL',
    });
  }
  return url.replace(/\/+$/, '');
}

/** Builds the function's app: opens the keyring and key providers and registers the credential. */
export async function createServerlessApp(options: ServerlessOptions): Promise<ServerlessApp> {
  const credential = parseWith(createCredentialSchema, options.credential, 'FERRY_CREDENTIAL', 'FERRY_CREDENTIAL.');
  const nodeApiUrl = options.nodeApiUrl === undefined ? undefined : checkNodeUrl(options.nodeApiUrl);
  const logError = options.logError ?? logToStderr;
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const dataDir = options.dataDir ?? join(tmpdir(), 'ferry');
  const store = new MemoryStore();
  let keyring: LocalKeyring | undefined;
  let backups: CloudBackups | undefined;
  try {
    keyring = await openDefaultKeyring(dataDir);
    const providers = keyProvidersFromEnv(keyring, options.env ?? process.env);
    const credentials = new CredentialStore(store, keyring, { providers: providers.lookup });
    await credentials.create(credential);
    backups = await CloudBackups.open({ store, credentials, keys: keyring, providers: providers.lookup });
    const inner = createApp({ credentials, cloudBackups: backups, logError, maxBodyBytes });

    const app = new Hono();
    app.onError((err, c) => errorResponse(c, err, logError));
    app.notFound(routeNotFound);
    if (options.authenticate !== undefined) app.use('/v1/*', options.authenticate);
    for (const op of API_OPERATIONS) {
      if (!LOCAL_OPERATIONS.has(op.operationId)) continue;
      const path = op.path.replace(/\{([^}]+)\}/g, ':$1');
      app.on(op.method.toUpperCase(), path, (c) => inner.fetch(c.req.raw));
    }
    app.use('*', bodyLimit({ maxSize: maxBodyBytes, onError: (c) => payloadTooLarge(c, maxBodyBytes) }));
    app.all(
      '*',
      forwardTo(nodeApiUrl, { fetch: options.fetch ?? fetch, timeoutMs: options.forwardTimeoutMs ?? 25_000 }),
    );
    const opened = { keyring, backups };
    return {
      app,
      close: async () => {
        await opened.backups.close();
        await opened.keyring.close();
      },
    };
  } catch (err: unknown) {
    await backups?.close();
    await keyring?.close();
    throw err;
  }
}
