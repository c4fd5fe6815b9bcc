/**
 * Claim leases of the scheduler: one holder at a time per name, under `/ferry/leases/<name>`, taken with the cluster
 * store's lock helper (node/cluster/lock.ts). The record is bound to a store lease of the given life: it vanishes
 * when the holder gives it back, or on the store's clock when the holder dies without doing so (never on a node's
 * own clock). Used so that two nodes never decide to run the same schedule.
 */
import { type ClusterStore, type HeldLock, tryLock } from '../../node/index.js';
import { LEASES_PREFIX } from './types.js';

/** The record of a lease under `/ferry/leases/<name>` (bound to a store lease). */
export interface LeaseRecord {
  holder: string;
  /** When it was taken (RFC 3339; for people). */
  since: string;
}

export class Leases {
  private readonly held = new Map<string, HeldLock>();

  /**
   * @param store The cluster store shared by the nodes.
   * @param holder This node's id.
   */
  constructor(
    private readonly store: ClusterStore,
    readonly holder: string,
  ) {}

  /**
   * Takes (or renews) the lease `name` for `ttlMs` (rounded up to whole seconds, the store's lease unit); false when
   * another holder has it.
   */
  async acquire(name: string, ttlMs: number): Promise<boolean> {
    const mine = this.held.get(name);
    if (mine !== undefined) {
      try {
        await mine.renew();
        return true;
      } catch {
        this.held.delete(name); // it expired: try to take it again
      }
    }
    const taken = await tryLock(this.store, `${LEASES_PREFIX}${name}`, {
      holder: this.holder,
      ttlSeconds: Math.max(1, Math.ceil(ttlMs / 1000)),
      keepAlive: false,
    });
    if (taken === undefined) return false;
    this.held.set(name, taken);
    return true;
  }

  /** Gives the lease back if this node still holds it. */
  async release(name: string): Promise<void> {
    const mine = this.held.get(name);
    this.held.delete(name);
    await mine?.release();
  }
}
