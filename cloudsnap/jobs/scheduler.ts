/**
 * A FIFO of tasks with a bound on how many run at once and exclusive keys: a task waits while another task holding
 * one of its keys runs (two backups of one volume must not run together: each releases the other's snapshot).
 * Waiting costs a closure; asking for many tasks queues them, it never fails.
 */

interface Entry {
  keys: readonly string[];
  run: () => Promise<void>;
}

export class KeyedScheduler {
  private readonly waiting: Entry[] = [];
  private readonly busy = new Set<string>();
  private running = 0;
  private idleWaiters: Array<() => void> = [];

  /** @param concurrency Tasks running at once (at least 1). */
  constructor(private readonly concurrency: number) {
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new RangeError('concurrency must be at least 1');
  }

  /** Tasks that are running. */
  get active(): number {
    return this.running;
  }

  /** Queues `run`; it starts when a slot is free and none of `keys` is held. Errors of `run` are its own business. */
  add(keys: readonly string[], run: () => Promise<void>): void {
    this.waiting.push({ keys, run });
    this.pump();
  }

  /** Resolves when nothing runs and nothing waits. */
  onIdle(): Promise<void> {
    if (this.running === 0 && this.waiting.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private pump(): void {
    for (let i = 0; i < this.waiting.length && this.running < this.concurrency; ) {
      const entry = this.waiting[i] as Entry;
      if (entry.keys.some((k) => this.busy.has(k))) {
        i++;
        continue;
      }
      this.waiting.splice(i, 1);
      this.start(entry);
    }
    if (this.running === 0 && this.waiting.length === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  private start(entry: Entry): void {
    this.running++;
    for (const k of entry.keys) this.busy.add(k);
    void entry
      .run()
      .catch(() => undefined)
      .finally(() => {
        this.running--;
        for (const k of entry.keys) this.busy.delete(k);
        this.pump();
      });
  }
}
