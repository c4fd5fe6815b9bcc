/**
 * The bearer token the CLI sends: `--token`, else FERRY_TOKEN, else — when this user can read the node's admin
 * secret (`$FERRY_DATA_DIR/auth/admin.secret`, or under the default data directory) — a system.admin token minted
 * from it for five minutes. Otherwise none (the API then answers 401 UNAUTHENTICATED).
 */
import { mintToken, ROLE_ADMIN, readAdminSecret } from '../../api/index.js';
import { defaultDataDir } from '../daemon.js';

/** `sub` of the tokens the CLI mints from the admin secret. */
export const LOCAL_ADMIN_SUB = 'ferry-admin';
/** Lifetime of those tokens: 5 minutes (one command). */
export const LOCAL_ADMIN_TTL_SECONDS = 300;

/** The data directory whose admin secret the CLI uses: FERRY_DATA_DIR, else the default. */
export function cliDataDir(env: NodeJS.ProcessEnv = process.env): string {
  const fromEnv = env.FERRY_DATA_DIR;
  return fromEnv !== undefined && fromEnv !== '' ? fromEnv : defaultDataDir();
}

/** The token for this run; undefined when there is none to send. */
export async function cliToken(flag: string | undefined, env: NodeJS.ProcessEnv = process.env) {
  const given = (flag ?? env.FERRY_TOKEN ?? '').trim();
  if (given !== '') return given;
  const secret = await readAdminSecret(cliDataDir(env));
  if (secret === undefined) return undefined;
  return mintToken(
    secret,
    { sub: LOCAL_ADMIN_SUB, name: 'local admin (ferry CLI)', roles: [ROLE_ADMIN] },
    { ttlSeconds: LOCAL_ADMIN_TTL_SECONDS },
  );
}
