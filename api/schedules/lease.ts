/**
 * Leases in the cluster store: one holder at a time per name, taken and given back with compare-and-set, expiring
 * on their own if the holder dies. Used so that two nodes never decide to run the same schedule.
 */
import type { ClusterStore } from '../../node/index.js';
import { LEASES_PREFIX } from './types.js';

/** The record of a lease under `/ferry/leases/<name>`. */
export interface LeaseRecord {
  holder: string;
  /** Epoch ms after which anyone may take it. */
  expires: number;
}

export class Leases {
  /**
   * @param store The cluster store shared by the nodes.
   * @param holder This node's id.
   * @param now The clock (epoch ms).
   */
  constructor(
    private readonly store: ClusterStore,
    readonly holder: string,
    private readonly now: () => number,
  ) {}

  /** Takes (or renews) the lease `name` for `ttlMs`; false when another holder has it and it has not expired. */
  async acquire(name: string, ttlMs: number): Promise<boolean> {
    const key = `${LEASES_PREFIX}${name}`;
    const current = await this.store.get<LeaseRecord>(key);
    if (current !== undefined && current.holder !== this.holder && current.expires > this.now()) return false;
    const next: LeaseRecord = { holder: this.holder, expires: this.now() + ttlMs };
    return this.store.compareAndSet(key, current, next);
  }

  /** Gives the lease back if this node still holds it. */
  async release(name: string): Promise<void> {
    const key = `${LEASES_PREFIX}${name}`;
    const current = await this.store.get<LeaseRecord>(key);
    if (current?.holder === this.holder) await this.store.compareAndSet(key, current, undefined);
  }
}
