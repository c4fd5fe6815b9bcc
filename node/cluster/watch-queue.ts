/** The async-iterable side of a watch, shared by the backends: they push events (or an error) in; a reader iterates. */
import type { Watch, WatchEvent } from './types.js';

/** Buffers events until read; `close()` ends the iteration after the buffered ones are read. */
export class WatchQueue<T> implements Watch<T> {
  private readonly events: WatchEvent<T>[] = [];
  private error: unknown;
  private failed = false;
  private closed = false;
  private wake: (() => void) | undefined;

  /** @param onClose What the backend does to stop feeding this watch. */
  constructor(private readonly onClose: () => Promise<void> | void) {}

  get isClosed(): boolean {
    return this.closed || this.failed;
  }

  push(events: readonly WatchEvent<T>[]): void {
    if (this.isClosed || events.length === 0) return;
    this.events.push(...events);
    this.notify();
  }

  /** Ends the watch with an error (thrown to the reader after the buffered events). */
  fail(err: unknown): void {
    if (this.isClosed) return;
    this.failed = true;
    this.error = err;
    this.notify();
    void Promise.resolve(this.onClose()).catch(() => undefined);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    const wasFailed = this.failed;
    this.closed = true;
    this.notify();
    if (!wasFailed) await this.onClose();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<WatchEvent<T>> {
    for (;;) {
      const next = this.events.shift();
      if (next !== undefined) {
        yield next;
        continue;
      }
      if (this.failed) throw this.error;
      if (this.closed) return;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
  }
}
