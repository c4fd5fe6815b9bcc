/**
 * How long a token the node accepts may live. A token is refused when `exp - iat` (its lifetime as issued) or
 * `exp - now` (what is left of it) is above the maximum, so a leaked long-lived token is worthless here and a token
 * without `iat` cannot dodge the bound. The maximum is the node's setting (`ferry node start --auth-max-token-ttl`,
 * env FERRY_AUTH_MAX_TOKEN_TTL), default 24 hours; `ferry auth token` refuses to mint beyond it.
 */
import { FerryError, invalidArgument } from '../../common/index.js';

/** Longest lifetime `parseTtl` accepts: 366 days. */
export const MAX_TTL_SECONDS = 366 * 24 * 3600;

const UNIT_SECONDS: Readonly<Record<string, number>> = { s: 1, m: 60, h: 3600, d: 86400 };

/**
 * Parses a lifetime such as `90`, `90s`, `15m`, `1h`, `7d` into seconds; INVALID_ARGUMENT on `ttl` when it is not
 * one or is above `maxSeconds` (default MAX_TTL_SECONDS).
 */
export function parseTtl(text: string, maxSeconds: number = MAX_TTL_SECONDS): number {
  const match = /^(\d+)([smhd]?)$/.exec(text.trim());
  const seconds = match === null ? Number.NaN : Number(match[1]) * (UNIT_SECONDS[match[2] || 's'] ?? Number.NaN);
  if (!Number.isSafeInteger(seconds) || seconds <= 0) {
    throw invalidArgument('ttl', `"${text}" is not a lifetime such as 30m, 1h or 7d`);
  }
  if (seconds > maxSeconds) {
    throw invalidArgument('ttl', `"${text}" is longer than the longest lifetime allowed, ${maxSeconds}s`);
  }
  return seconds;
}

/** Default longest lifetime of an accepted token: 24 hours. */
export const DEFAULT_MAX_TOKEN_TTL_SECONDS = 24 * 3600;

/** The environment variable holding the node's maximum token lifetime (e.g. `24h`, `7d`). */
export const MAX_TOKEN_TTL_ENV = 'FERRY_AUTH_MAX_TOKEN_TTL';

/** A lifetime as people write it: `90s`, `15m`, `24h`, `30d` (days from two days on). */
export function formatTtl(seconds: number): string {
  if (seconds % 86400 === 0 && seconds >= 2 * 86400) return `${seconds / 86400}d`;
  if (seconds % 3600 === 0) return `${seconds / 3600}h`;
  if (seconds % 60 === 0) return `${seconds / 60}m`;
  return `${seconds}s`;
}

/**
 * The maximum token lifetime: the flag if given, else FERRY_AUTH_MAX_TOKEN_TTL, else 24 hours. INVALID_ARGUMENT
 * naming the setting when it is not a lifetime (at most 366d).
 */
export function maxTokenTtlSeconds(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): number {
  const fromEnv = env[MAX_TOKEN_TTL_ENV];
  const text = flag ?? (fromEnv === undefined || fromEnv.trim() === '' ? undefined : fromEnv);
  if (text === undefined) return DEFAULT_MAX_TOKEN_TTL_SECONDS;
  try {
    return parseTtl(text, MAX_TTL_SECONDS);
  } catch (err: unknown) {
    const setting = flag !== undefined ? '--auth-max-token-ttl' : MAX_TOKEN_TTL_ENV;
    throw new FerryError(
      'INVALID_ARGUMENT',
      `${setting}: "${text}" is not a lifetime such as 8h or 7d (at most 366d)`,
      {
        cause: err,
      },
    );
  }
}

/**
 * UNAUTHENTICATED when a verified token's lifetime is above `maxSeconds`: `exp - iat` when it has `iat`, and always
 * `exp - now` (with `toleranceSeconds` of clock skew).
 */
export function checkTokenLifetime(
  payload: { exp?: number; iat?: number },
  maxSeconds: number,
  toleranceSeconds: number,
  nowSeconds: number = Math.floor(Date.now() / 1000),
): void {
  const { exp, iat } = payload;
  if (exp === undefined) return;
  const limit = formatTtl(maxSeconds);
  const advice = `this node accepts tokens that live at most ${limit}; get a shorter-lived one (ferry auth token --ttl)`;
  if (iat !== undefined && exp - iat > maxSeconds) {
    throw new FerryError('UNAUTHENTICATED', `invalid token: it was issued to live ${formatTtl(exp - iat)}; ${advice}`);
  }
  if (exp - nowSeconds > maxSeconds + toleranceSeconds) {
    throw new FerryError('UNAUTHENTICATED', `invalid token: it expires more than ${limit} from now; ${advice}`);
  }
}
