/** The scheduler's view of time: injectable, so tests move time by hand and jump it back and forth. */

/** A timer handle as `setTimer` returns it. */
export type TimerHandle = { cancel(): void };

export interface Clock {
  /** Wall-clock time, epoch milliseconds. */
  now(): number;
  /** Calls `fn` once after about `ms` milliseconds; the timer never keeps the process alive. */
  setTimer(fn: () => void, ms: number): TimerHandle;
}

/** The real clock: Date.now and unref'd setTimeout. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(fn, ms) {
    const t = setTimeout(fn, Math.max(0, ms));
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
};

/** A clock for tests: time moves only with `set`/`advance`; due timers run on `advance`/`set`. */
export class ManualClock implements Clock {
  private timers: Array<{ at: number; fn: () => void; cancelled: boolean }> = [];

  constructor(private ms: number) {}

  now(): number {
    return this.ms;
  }

  setTimer(fn: () => void, ms: number): TimerHandle {
    const timer = { at: this.ms + Math.max(0, ms), fn, cancelled: false };
    this.timers.push(timer);
    return {
      cancel: () => {
        timer.cancelled = true;
      },
    };
  }

  /** Timers not yet run nor cancelled. */
  get pending(): number {
    return this.timers.filter((t) => !t.cancelled).length;
  }

  /** Moves time to `ms` (backwards too) and runs the timers that are due. */
  set(ms: number): void {
    this.ms = ms;
    const due = this.timers.filter((t) => !t.cancelled && t.at <= ms);
    this.timers = this.timers.filter((t) => !t.cancelled && t.at > ms);
    for (const t of due) t.fn();
  }

  advance(ms: number): void {
    this.set(this.ms + ms);
  }
}
