/**
 * A byte window: at most `limit` bytes in flight on one connection. `acquire` waits (first come, first served)
 * until the bytes fit; a request larger than the whole window is let through alone, when nothing else is in flight.
 */
import type { FerryError } from '../../common/index.js';

interface Waiter {
  bytes: number;
  resolve: () => void;
  reject: (err: FerryError) => void;
}

export class ByteWindow {
  private used = 0;
  private readonly waiters: Waiter[] = [];
  private failure: FerryError | undefined;

  constructor(readonly limit: number) {}

  /** Bytes in flight now. */
  get inFlight(): number {
    return this.used;
  }

  /** Senders waiting for room. */
  get waiting(): number {
    return this.waiters.length;
  }

  /** Reserves `bytes` now if they fit and nobody waits; false (nothing reserved) otherwise, or when failed. */
  tryAcquire(bytes: number): boolean {
    if (this.failure !== undefined || this.waiters.length > 0 || !this.fits(bytes)) return false;
    this.used += bytes;
    return true;
  }

  /** Resolves when `bytes` are reserved; rejects when the window is failed (the connection is gone). */
  acquire(bytes: number): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.waiters.length === 0 && this.fits(bytes)) {
      this.used += bytes;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => this.waiters.push({ bytes, resolve, reject }));
  }

  /** Gives back bytes reserved by `acquire`, letting waiters in. */
  release(bytes: number): void {
    this.used -= bytes;
    for (let next = this.waiters[0]; next !== undefined && this.fits(next.bytes); next = this.waiters[0]) {
      this.waiters.shift();
      this.used += next.bytes;
      next.resolve();
    }
  }

  /** Rejects every waiter, and every later acquire, with `err`. */
  fail(err: FerryError): void {
    this.failure ??= err;
    for (const waiter of this.waiters.splice(0)) waiter.reject(err);
  }

  private fits(bytes: number): boolean {
    return this.used === 0 || this.used + bytes <= this.limit;
  }
}
