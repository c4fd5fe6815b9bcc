/**
 * The bearer token the CLI sends: `--token`, else FERRY_TOKEN, else — when this user can read the node's admin
 * secret (`--data-dir` or `$FERRY_DATA_DIR`, else the default data directory, then `auth/admin.secret`) — a
 * system.admin token minted from it for five minutes (in a cluster the node writes the cluster's admin secret there
 * at each start, so that token works on every node). Otherwise none (the API then answers 401 UNAUTHENTICATED).
 * Each token comes with a sentence saying where it came from, which the CLI adds to a 401 answer.
 */
import { adminSecretPath, mintToken, ROLE_ADMIN, readAdminSecret } from '../../api/index.js';
import { defaultDataDir } from '../daemon.js';

/** `sub` of the tokens the CLI mints from the admin secret. */
export const LOCAL_ADMIN_SUB = 'ferry-admin';
/** Lifetime of those tokens: 5 minutes (one command). */
export const LOCAL_ADMIN_TTL_SECONDS = 300;

/** The token of a run and where it came from. */
export interface CliToken {
  /** The bearer token; undefined when there is none to send. */
  token: string | undefined;
  /** For a 401 answer: where the token came from and how to give the right one. */
  hint: string;
}

/** The data directory whose admin secret the CLI uses: `--data-dir`, else FERRY_DATA_DIR, else the default. */
export function cliDataDir(flag?: string, env: NodeJS.ProcessEnv = process.env): string {
  if (flag !== undefined && flag !== '') return flag;
  const fromEnv = env.FERRY_DATA_DIR;
  return fromEnv !== undefined && fromEnv !== '' ? fromEnv : defaultDataDir();
}

const POINT_IT =
  'if the node keeps its data elsewhere, set --data-dir or FERRY_DATA_DIR to that directory, or give a token with ' +
  '--token or FERRY_TOKEN';

/** The token for this run (`flag` is `--token`, `dataDir` is `--data-dir`), with where it came from. */
export async function cliToken(
  flag: string | undefined,
  dataDir?: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<CliToken> {
  const fromFlag = (flag ?? '').trim();
  if (fromFlag !== '') return { token: fromFlag, hint: 'the token came from --token' };
  const fromEnv = (env.FERRY_TOKEN ?? '').trim();
  if (fromEnv !== '') return { token: fromEnv, hint: 'the token came from FERRY_TOKEN' };
  const dir = cliDataDir(dataDir, env);
  const path = adminSecretPath(dir);
  const secret = await readAdminSecret(dir);
  if (secret === undefined) {
    return { token: undefined, hint: `no admin secret could be read at ${path}; ${POINT_IT}` };
  }
  const token = await mintToken(
    secret,
    { sub: LOCAL_ADMIN_SUB, name: 'local admin (ferry CLI)', roles: [ROLE_ADMIN] },
    { ttlSeconds: LOCAL_ADMIN_TTL_SECONDS },
  );
  return {
    token,
    hint: `the CLI signed its token with the admin secret ${path}; ${POINT_IT}`,
  };
}
