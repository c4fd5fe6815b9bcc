/**
 * A byte window: at most `limit` bytes in flight on one connection. A sender is let in (its callback called) when its
 * bytes fit, strictly first come, first served, and synchronously from `release`: requests leave in the order they
 * were made. A request larger than the whole window is let through alone, when nothing else is in flight.
 */
import type { FerryError } from '../../common/index.js';

interface Waiter {
  bytes: number;
  go: () => void;
  fail: (err: FerryError) => void;
}

export class ByteWindow {
  private used = 0;
  private readonly waiters: Waiter[] = [];
  private head = 0;
  private failure: FerryError | undefined;

  constructor(readonly limit: number) {}

  /** Bytes in flight now. */
  get inFlight(): number {
    return this.used;
  }

  /** Senders waiting for room. */
  get waiting(): number {
    return this.waiters.length - this.head;
  }

  /**
   * Reserves `bytes` and calls `go` (now when they fit and nobody waits, else from a later `release`), or calls
   * `fail` when the window is failed (the connection is gone).
   */
  acquire(bytes: number, go: () => void, fail: (err: FerryError) => void): void {
    if (this.failure !== undefined) {
      fail(this.failure);
      return;
    }
    if (this.waiting === 0 && this.fits(bytes)) {
      this.used += bytes;
      go();
      return;
    }
    this.waiters.push({ bytes, go, fail });
  }

  /** Gives back reserved bytes, letting waiters in. */
  release(bytes: number): void {
    this.used -= bytes;
    while (this.failure === undefined && this.head < this.waiters.length) {
      const next = this.waiters[this.head] as Waiter;
      if (!this.fits(next.bytes)) break;
      this.head += 1;
      this.used += next.bytes;
      next.go();
    }
    if (this.head > 64 && this.head * 2 > this.waiters.length) {
      this.waiters.splice(0, this.head);
      this.head = 0;
    }
  }

  /** Fails every waiter, and every later acquire, with `err`. */
  fail(err: FerryError): void {
    this.failure ??= err;
    const waiters = this.waiters.splice(0);
    const head = this.head;
    this.head = 0;
    for (const waiter of waiters.slice(head)) waiter.fail(err);
  }

  private fits(bytes: number): boolean {
    return this.used === 0 || this.used + bytes <= this.limit;
  }
}
