/**
 * Bearer token verification with `jose`: HS256 with shared secrets (the node's admin secret and any others the
 * operator adds), RS256 with a PEM public key or an issuer's JWKS. Every token must carry `sub` and `exp`. Errors
 * never quote the token.
 */
import {
  createRemoteJWKSet,
  decodeProtectedHeader,
  errors,
  importSPKI,
  type JWTPayload,
  type JWTVerifyGetKey,
  jwtVerify,
} from 'jose';
import { FerryError, isFerryError } from '../../common/index.js';
import { type Principal, principalFromClaims } from './principal.js';
import { checkTokenLifetime, DEFAULT_MAX_TOKEN_TTL_SECONDS } from './token-lifetime.js';

/** The `iss` of tokens the node mints with its own secret (`ferry auth token`). */
export const LOCAL_ISSUER = 'ferry';
/** Shortest shared secret accepted: 32 bytes (HS256's key should be at least the hash size). */
export const MIN_SECRET_BYTES = 32;

/** An imported RS256 public key. */
type PublicKey = Awaited<ReturnType<typeof importSPKI>>;

/** How tokens are checked. At least one method must be given. */
export interface TokenVerifierOptions {
  /** HS256 secrets; a token signed with any of them passes (keep the old one here while rotating). Default none. */
  sharedSecrets?: readonly Uint8Array[];
  /** The `iss` an HS256 token must carry. Default LOCAL_ISSUER (`ferry`). */
  sharedIssuer?: string;
  /** RS256 public key as PEM text (`-----BEGIN PUBLIC KEY-----`, SPKI). Default none. */
  publicKeyPem?: string;
  /** JWKS URL of an RS256 issuer (fetched on demand and cached by jose). Default none. */
  jwksUrl?: string;
  /** The `iss` an RS256 token must carry. Default: not checked. */
  issuer?: string;
  /** The `aud` an RS256 token must carry. Default: not checked. */
  audience?: string;
  /** Leeway for `exp` and `nbf`, in seconds. Default 30. */
  clockToleranceSeconds?: number;
  /**
   * Longest accepted lifetime, in seconds: tokens whose `exp - iat`, or `exp - now`, is above it are refused.
   * Default DEFAULT_MAX_TOKEN_TTL_SECONDS (24 hours).
   */
  maxLifetimeSeconds?: number;
}

/** Checks a bearer token and returns its principal. */
export interface TokenVerifier {
  /** UNAUTHENTICATED when the token is missing, malformed, expired, or not signed by a trusted key. */
  verify(token: string | undefined): Promise<Principal>;
}

const MISSING_TOKEN =
  'missing bearer token: send "Authorization: Bearer <token>" (the ferry CLI takes --token or FERRY_TOKEN; ' +
  '`ferry auth token` mints one on the node)';

function unauthenticated(reason: string, cause?: unknown): FerryError {
  return new FerryError('UNAUTHENTICATED', `invalid token: ${reason}`, cause === undefined ? {} : { cause });
}

/** Turns a jose failure into UNAUTHENTICATED with a fixed reason (jose's messages never hold the token either). */
function translate(err: unknown): FerryError {
  if (isFerryError(err)) return err;
  if (err instanceof errors.JWTExpired) return unauthenticated('it has expired; get a new one', err);
  if (err instanceof errors.JWTClaimValidationFailed) {
    return unauthenticated(`the "${err.claim}" claim is not accepted (${err.reason})`, err);
  }
  if (err instanceof errors.JWSSignatureVerificationFailed || err instanceof errors.JWKSNoMatchingKey) {
    return unauthenticated('its signature does not verify with any trusted key', err);
  }
  if (err instanceof errors.JOSEAlgNotAllowed) return unauthenticated('its algorithm is not accepted', err);
  if (err instanceof errors.JWKSTimeout) {
    return new FerryError('UNAVAILABLE', 'the JWKS of the token issuer did not answer in time; retry', { cause: err });
  }
  if (err instanceof errors.JOSEError) return unauthenticated('it is malformed', err);
  return new FerryError('UNAVAILABLE', 'cannot check the token: the JWKS of its issuer is unreachable', {
    cause: err,
  });
}

/** Builds a verifier; INVALID_ARGUMENT when no method is configured, a secret is short, or the PEM is bad. */
export async function createTokenVerifier(options: TokenVerifierOptions): Promise<TokenVerifier> {
  const secrets = options.sharedSecrets ?? [];
  for (const secret of secrets) {
    if (secret.byteLength < MIN_SECRET_BYTES) {
      throw new FerryError('INVALID_ARGUMENT', `a shared secret must be at least ${MIN_SECRET_BYTES} bytes long`);
    }
  }
  const rsaKeys: (PublicKey | JWTVerifyGetKey)[] = [];
  if (options.publicKeyPem !== undefined) {
    try {
      rsaKeys.push(await importSPKI(options.publicKeyPem, 'RS256'));
    } catch (err: unknown) {
      throw new FerryError('INVALID_ARGUMENT', 'the RS256 public key is not a PEM SPKI public key', { cause: err });
    }
  }
  if (options.jwksUrl !== undefined) {
    let url: URL;
    try {
      url = new URL(options.jwksUrl);
    } catch (err: unknown) {
      throw new FerryError('INVALID_ARGUMENT', 'the JWKS URL is not a URL', { cause: err });
    }
    rsaKeys.push(createRemoteJWKSet(url));
  }
  if (secrets.length === 0 && rsaKeys.length === 0) {
    throw new FerryError('INVALID_ARGUMENT', 'no token verification method: give a shared secret, a key or a JWKS');
  }
  const clockTolerance = options.clockToleranceSeconds ?? 30;
  const sharedIssuer = options.sharedIssuer ?? LOCAL_ISSUER;
  const maxLifetime = options.maxLifetimeSeconds ?? DEFAULT_MAX_TOKEN_TTL_SECONDS;

  async function tryEach(token: string, keys: readonly (PublicKey | Uint8Array | JWTVerifyGetKey)[], alg: string) {
    let last: unknown;
    for (const key of keys) {
      try {
        const common = {
          algorithms: [alg],
          clockTolerance,
          requiredClaims: ['sub', 'exp'],
          ...(alg === 'HS256'
            ? { issuer: sharedIssuer }
            : {
                ...(options.issuer !== undefined && { issuer: options.issuer }),
                ...(options.audience !== undefined && { audience: options.audience }),
              }),
        };
        const result =
          typeof key === 'function' ? await jwtVerify(token, key, common) : await jwtVerify(token, key, common);
        return result.payload;
      } catch (err: unknown) {
        last = err;
        // Only a key mismatch is worth trying the next key for; anything else is about the token itself.
        if (!(err instanceof errors.JWSSignatureVerificationFailed || err instanceof errors.JWKSNoMatchingKey)) break;
      }
    }
    throw translate(last);
  }

  return {
    async verify(token: string | undefined): Promise<Principal> {
      if (token === undefined || token === '') throw new FerryError('UNAUTHENTICATED', MISSING_TOKEN);
      let alg: string | undefined;
      try {
        alg = decodeProtectedHeader(token).alg;
      } catch (err: unknown) {
        throw unauthenticated('it is not a JWT', err);
      }
      let payload: JWTPayload;
      if (alg === 'HS256' && secrets.length > 0) payload = await tryEach(token, secrets, 'HS256');
      else if (alg === 'RS256' && rsaKeys.length > 0) payload = await tryEach(token, rsaKeys, 'RS256');
      else throw unauthenticated(`this node does not accept ${alg === undefined ? 'unsigned' : alg} tokens`);
      checkTokenLifetime(payload, maxLifetime, clockTolerance);
      return principalFromClaims(payload);
    },
  };
}
