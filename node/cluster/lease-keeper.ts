/** Keeps one lease of the cluster store alive on a timer, and says when it is lost. */
import type { ClusterStore, LeaseId } from './types.js';

export class LeaseKeeper {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;

  /**
   * @param store The store that granted the lease.
   * @param lease The lease.
   * @param ttlSeconds Its TTL: keep-alives go every third of it.
   */
  constructor(
    private readonly store: ClusterStore,
    readonly lease: LeaseId,
    private readonly ttlSeconds: number,
  ) {}

  /** Aborted when the lease expired, was revoked, or could not be renewed before its end. */
  get lost(): AbortSignal {
    return this.controller.signal;
  }

  /** Starts the keep-alives (the timer never keeps the process alive). */
  start(): void {
    if (this.timer !== undefined || this.lost.aborted) return;
    const everyMs = (this.ttlSeconds * 1000) / 3;
    let lastRenewed = Date.now();
    this.timer = setInterval(() => {
      this.renew().then(
        () => {
          lastRenewed = Date.now();
        },
        (err: unknown) => {
          // A store that does not answer for a whole TTL has expired the lease by now, or will.
          if (isGone(err) || Date.now() - lastRenewed >= this.ttlSeconds * 1000) this.stop(err);
        },
      );
    }, everyMs);
    this.timer.unref();
  }

  /** Renews the lease once; marks it lost (and rejects) when it is gone. */
  async renew(): Promise<void> {
    try {
      await this.store.keepAlive(this.lease);
    } catch (err: unknown) {
      if (isGone(err)) this.stop(err);
      throw err;
    }
  }

  /** Stops the keep-alives and revokes the lease (its keys vanish). */
  async revoke(): Promise<void> {
    const wasLost = this.lost.aborted;
    this.stop(new Error('released'));
    if (!wasLost) await this.store.revokeLease(this.lease);
  }

  private stop(reason: unknown): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    if (!this.controller.signal.aborted) this.controller.abort(reason);
  }
}

function isGone(err: unknown): boolean {
  return typeof err === 'object' && err !== null && 'code' in err && err.code === 'NOT_FOUND';
}
