/**
 * Cluster pairs in the cluster store (every node of a cluster sees them): `/ferry/pairs/<pair id>` for each pair and
 * `/ferry/pair-tokens/<token id>` for each token this cluster issued. Their secrets (a pair's key, a token's secret)
 * are in the SecretVault as `pair/<id>` and `pair-token/<id>`, never in these records.
 */
import { randomBytes } from 'node:crypto';
import { FerryError } from '../../common/index.js';

export const PAIRS_PREFIX = '/ferry/pairs/';
export const PAIR_TOKENS_PREFIX = '/ferry/pair-tokens/';

/** One side of a pair between two clusters; both sides share `id` and the key. */
export interface PairRecord {
  id: string;
  /** Its name on this cluster (unique here). */
  name: string;
  /** The other cluster's API URL (its peer link is on the same port). */
  remote_url: string;
  remote_cluster_id: string;
  remote_cluster_name: string;
  /** RFC 3339. */
  created: string;
  /** This cluster created the pair with the other's token (false: the other cluster did, with this one's). */
  initiated: boolean;
  /** The object-store credential for migrations and standbys through a bucket, when the pair names one. */
  credential_id?: string;
}

/** A pair token this cluster issued. */
export interface TokenRecord {
  id: string;
  /** RFC 3339. */
  created: string;
  /** RFC 3339: no pair is made with it after this. */
  expires: string;
  /** The pair made with it (a token makes one pair; a retry of that pair's creation gets the same answer). */
  used_by?: string;
}

export const pairKey = (id: string): string => PAIRS_PREFIX + id;
export const tokenKey = (id: string): string => PAIR_TOKENS_PREFIX + id;
export const pairSecret = (id: string): string => `pair/${id}`;
export const tokenSecret = (id: string): string => `pair-token/${id}`;

/** The PSK identity of a pair's link and of a token's one pairing call. */
export const pairIdentity = (id: string): string => `p.${id}`;
export const tokenIdentity = (id: string): string => `t.${id}`;

const TOKEN_PREFIX = 'ferrypair1';

/** A token as the user carries it: `ferrypair1.<token id>.<secret, base64url>`. */
export function formatToken(id: string, secret: Buffer): string {
  return `${TOKEN_PREFIX}.${id}.${secret.toString('base64url')}`;
}

/** A new token id and secret. */
export function newToken(): { id: string; secret: Buffer } {
  return { id: randomBytes(9).toString('base64url').replace(/[-_]/g, 'x'), secret: randomBytes(32) };
}

/** The id and secret of a token as the user gave it; INVALID_ARGUMENT (field `token`) when it is not one. */
export function parseToken(token: string): { id: string; secret: Buffer } {
  const parts = token.trim().split('.');
  const secret = parts.length === 3 ? Buffer.from(parts[2] as string, 'base64url') : Buffer.alloc(0);
  if (parts[0] !== TOKEN_PREFIX || !/^[A-Za-z0-9]{4,64}$/.test(parts[1] ?? '') || secret.length !== 32) {
    throw new FerryError(
      'INVALID_ARGUMENT',
      'token: not a pair token; run `ferry cluster pair token` on the other cluster and pass what it prints',
      { field: 'token' },
    );
  }
  return { id: parts[1] as string, secret };
}

/** Pair names: like volume names, letters, digits, '.', '_' and '-', 1 to 63 characters. */
export function validatePairName(name: unknown, field = 'name'): string {
  if (typeof name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/.test(name)) {
    throw new FerryError(
      'INVALID_ARGUMENT',
      `${field}: a pair name is 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit`,
      { field },
    );
  }
  return name;
}

/** An http(s) URL with a host; INVALID_ARGUMENT otherwise. */
export function validateRemoteUrl(url: unknown, field = 'remote_url'): string {
  let parsed: URL | undefined;
  try {
    parsed = typeof url === 'string' ? new URL(url) : undefined;
  } catch {
    parsed = undefined;
  }
  if (parsed === undefined || !['http:', 'https:'].includes(parsed.protocol) || parsed.hostname === '') {
    throw new FerryError('INVALID_ARGUMENT', `${field}: give the other cluster's API URL, e.g. http://10.0.0.5:9001`, {
      field,
    });
  }
  return parsed.origin;
}
