/**
 * Counts I/O in flight by epoch so that a layer unlinked from every chain can be closed once the I/O that might
 * still read it has finished: `drain()` waits for everything that entered before it was called.
 */
export class IoTracker {
  private epoch = 0;
  private readonly counts = new Map<number, number>();
  private waiters: Array<{ upTo: number; resolve: () => void }> = [];

  enter(): number {
    const e = this.epoch;
    this.counts.set(e, (this.counts.get(e) ?? 0) + 1);
    return e;
  }

  leave(epoch: number): void {
    const n = (this.counts.get(epoch) ?? 1) - 1;
    if (n === 0) this.counts.delete(epoch);
    else this.counts.set(epoch, n);
    if (n === 0 && this.waiters.length > 0) this.check();
  }

  drain(): Promise<void> {
    const upTo = this.epoch++;
    return new Promise((resolve) => {
      this.waiters.push({ upTo, resolve });
      this.check();
    });
  }

  private check(): void {
    const oldest = Math.min(...this.counts.keys());
    const still: typeof this.waiters = [];
    for (const w of this.waiters) {
      if (this.counts.size === 0 || oldest > w.upTo) w.resolve();
      else still.push(w);
    }
    this.waiters = still;
  }
}
