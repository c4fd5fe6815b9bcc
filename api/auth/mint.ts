/** Minting HS256 tokens with a shared secret (the node's admin secret): `ferry auth token` and the CLI's own token. */
import { SignJWT } from 'jose';
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
