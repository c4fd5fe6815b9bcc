/** Minting HS256 tokens with a shared secret (the node's admin secret): `ferry auth token` and the CLI's own token. */
import { SignJWT } from 'jose';
import { invalidArgument } from '../../common/index.js';
import { LOCAL_ISSUER } from './verifier.js';

/** The claims of a minted token. */
export interface TokenClaims {
  sub: string;
  name?: string;
  email?: string;
  roles: readonly string[];
  groups?: readonly string[];
}

export interface MintOptions {
  /** Lifetime in seconds. Default 3600. */
  ttlSeconds?: number;
  /** `iss`. Default LOCAL_ISSUER (`ferry`), the issuer the node expects of HS256 tokens. */
  issuer?: string;
}

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

/** Signs a token for `claims` with `secret` (HS256). */
export function mintToken(secret: Uint8Array, claims: TokenClaims, options: MintOptions = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const payload: Record<string, unknown> = { roles: [...claims.roles], groups: [...(claims.groups ?? [])] };
  if (claims.name !== undefined) payload.name = claims.name;
  if (claims.email !== undefined) payload.email = claims.email;
  return new SignJWT(payload)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(claims.sub)
    .setIssuer(options.issuer ?? LOCAL_ISSUER)
    .setIssuedAt(now)
    .setExpirationTime(now + (options.ttlSeconds ?? 3600))
    .sign(secret);
}
