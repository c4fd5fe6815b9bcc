/**
 * A reader-writer gate per volume: I/O enters shared, metadata changes (snapshot, merge steps) enter exclusive.
 * Exclusive entry waits for in-flight I/O to drain and holds new I/O back; waiting exclusives go first.
 */
export class Gate {
  private shared = 0;
  private exclusive = false;
  private readonly waitingExclusive: Array<() => void> = [];
  private readonly waitingShared: Array<() => void> = [];

  /** Enters shared without waiting when nothing exclusive is held or waiting; returns false otherwise. */
  tryEnterShared(): boolean {
    if (this.exclusive || this.waitingExclusive.length > 0) return false;
    this.shared++;
    return true;
  }

  async enterShared(): Promise<void> {
    if (this.tryEnterShared()) return;
    await new Promise<void>((resolve) => this.waitingShared.push(resolve));
  }

  leaveShared(): void {
    this.shared--;
    if (this.shared === 0) this.wake();
  }

  async enterExclusive(): Promise<void> {
    if (!this.exclusive && this.shared === 0) {
      this.exclusive = true;
      return;
    }
    await new Promise<void>((resolve) => this.waitingExclusive.push(resolve));
  }

  leaveExclusive(): void {
    this.exclusive = false;
    this.wake();
  }

  /** Runs `fn` with the gate held exclusively. */
  async withExclusive<T>(fn: () => Promise<T>): Promise<T> {
    await this.enterExclusive();
    try {
      return await fn();
    } finally {
      this.leaveExclusive();
    }
  }

  private wake(): void {
    if (this.exclusive) return;
    const next = this.waitingExclusive.shift();
    if (next !== undefined) {
      if (this.shared === 0) {
        this.exclusive = true;
        next();
      } else {
        this.waitingExclusive.unshift(next);
      }
      return;
    }
    const readers = this.waitingShared.splice(0);
    this.shared += readers.length;
    for (const r of readers) r();
  }
}

/** Serializes work per key (granule numbers): read-modify-write of one granule never interleaves with another. */
export class KeyedLock {
  private readonly tails = new Map<number, Promise<void>>();

  async lock(key: number): Promise<() => void> {
    const prev = this.tails.get(key);
    let release!: () => void;
    const mine = new Promise<void>((resolve) => {
      release = resolve;
    });
    const tail = prev === undefined ? mine : prev.then(() => mine);
    this.tails.set(key, tail);
    if (prev !== undefined) await prev;
    return () => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
      release();
    };
  }
}
