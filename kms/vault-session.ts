/**
 * Keeps the Vault token of a node-vault client usable: AppRole login (`POST auth/<mount>/login`) on first use, or for
 * a given token one `GET auth/token/lookup-self` to learn its TTL; then, on each use, `POST auth/token/renew-self`
 * once less than a third of the TTL is left. An AppRole token that cannot be renewed (not renewable, renewal refused,
 * or already expired) is replaced by logging in again. Nothing runs in the background: an idle process holds no timer.
 */
import type NodeVault from 'node-vault';
import { FerryError } from '../common/index.js';
import { failureCause, unavailable, vaultFailure } from './vault-errors.js';

/** How the client authenticates. */
export type VaultAuth =
  | { method: 'token'; token: string }
  | { method: 'approle'; roleId: string; secretId: string; mount: string };

interface Lease {
  token: string | undefined;
  ttlSeconds: number;
  renewable: boolean;
}

function readLease(body: unknown, where: 'auth' | 'data'): Lease {
  const outer = typeof body === 'object' && body !== null ? (body as Record<string, unknown>)[where] : undefined;
  const o = typeof outer === 'object' && outer !== null ? (outer as Record<string, unknown>) : {};
  const ttl = where === 'auth' ? o.lease_duration : o.ttl;
  return {
    token: typeof o.client_token === 'string' ? o.client_token : undefined,
    ttlSeconds: typeof ttl === 'number' && ttl > 0 ? ttl : 0,
    renewable: o.renewable === true,
  };
}

/** The token lifecycle of one node-vault client. */
export class VaultSession {
  private started = false;
  /** ms since epoch; undefined when the token never expires or its expiry is unknown */
  private expiresAt: number | undefined;
  private ttlMs = 0;
  private renewable = false;
  private pending: Promise<void> | undefined;

  constructor(
    private readonly api: NodeVault.client,
    private readonly auth: VaultAuth,
    private readonly endpoint: string,
    private readonly now: () => number = Date.now,
  ) {
    if (auth.method === 'token') api.token = auth.token;
  }

  /** Logs in, looks up or renews as needed so the next call has a live token. Concurrent callers share one refresh. */
  ensure(): Promise<void> {
    if (this.pending !== undefined) return this.pending;
    const step = this.nextStep();
    if (step === undefined) return Promise.resolve();
    this.pending = step().finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  private nextStep(): (() => Promise<void>) | undefined {
    const approle = this.auth.method === 'approle';
    if (!this.started) return approle ? () => this.login() : () => this.lookup();
    if (this.expiresAt === undefined) return undefined;
    const left = this.expiresAt - this.now();
    if (left <= 0) return approle ? () => this.login() : undefined;
    if (left >= this.ttlMs / 3) return undefined;
    if (this.renewable) return () => this.renew();
    return approle ? () => this.login() : undefined;
  }

  private remember(lease: Lease): void {
    this.started = true;
    this.ttlMs = lease.ttlSeconds * 1000;
    this.renewable = lease.renewable;
    this.expiresAt = lease.ttlSeconds > 0 ? this.now() + this.ttlMs : undefined;
  }

  private async login(): Promise<void> {
    if (this.auth.method !== 'approle') return;
    const { roleId, secretId, mount } = this.auth;
    let body: unknown;
    try {
      body = await this.api.write(`auth/${mount}/login`, { role_id: roleId, secret_id: secretId });
    } catch (err: unknown) {
      const failure = vaultFailure(err);
      throw (
        unavailable(failure, this.endpoint) ??
        new FerryError(
          'UNAUTHENTICATED',
          `Vault at ${this.endpoint} refused the AppRole login at auth/${mount}: check role_id and secret_id`,
          { cause: failureCause(failure) },
        )
      );
    }
    const lease = readLease(body, 'auth');
    if (lease.token === undefined) {
      throw new FerryError('INTERNAL', `Vault at ${this.endpoint} answered the AppRole login without a client_token`);
    }
    this.api.token = lease.token;
    this.remember(lease);
  }

  private async lookup(): Promise<void> {
    try {
      this.remember(readLease(await this.api.read('auth/token/lookup-self'), 'data'));
    } catch (err: unknown) {
      const failure = vaultFailure(err);
      throw (
        unavailable(failure, this.endpoint) ??
        new FerryError(
          'UNAUTHENTICATED',
          `Vault at ${this.endpoint} rejected the token (invalid, expired or revoked): give a valid token`,
          { cause: failureCause(failure) },
        )
      );
    }
  }

  private async renew(): Promise<void> {
    try {
      this.remember(readLease(await this.api.write('auth/token/renew-self', {}), 'auth'));
    } catch (err: unknown) {
      const failure = vaultFailure(err);
      const down = unavailable(failure, this.endpoint);
      if (down !== undefined) throw down;
      if (this.auth.method === 'approle') return this.login();
      // A given token that cannot be renewed is used until Vault refuses it; the call then says why.
      this.expiresAt = undefined;
    }
  }
}
