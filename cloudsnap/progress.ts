/** Live progress of a backup or restore, in the shape OpenStorage status objects use. */
export interface Progress {
  bytes_done: number;
  bytes_total: number;
  /** Seconds left at the current rate; absent until the rate is known. */
  eta_seconds?: number;
  phase: 'preparing' | 'transferring' | 'committing' | 'done';
}

/** Tracks bytes done against a total and reports at most every `intervalMs` (and at phase changes). */
export class ProgressTracker {
  private done = 0;
  private total = 0;
  private readonly started = Date.now();
  private lastReport = 0;

  constructor(
    private readonly report: ((p: Progress) => void) | undefined,
    private readonly intervalMs = 250,
  ) {}

  setTotal(total: number): void {
    this.total = total;
    this.emit('transferring', true);
  }

  add(bytes: number): void {
    this.done += bytes;
    this.emit('transferring', false);
  }

  phase(phase: Progress['phase']): void {
    this.emit(phase, true);
  }

  snapshot(phase: Progress['phase']): Progress {
    const p: Progress = { bytes_done: this.done, bytes_total: this.total, phase };
    const elapsed = (Date.now() - this.started) / 1000;
    if (this.done > 0 && elapsed > 0 && this.total >= this.done) {
      p.eta_seconds = Math.round(((this.total - this.done) * elapsed) / this.done);
    }
    return p;
  }

  private emit(phase: Progress['phase'], force: boolean): void {
    if (this.report === undefined) return;
    const now = Date.now();
    if (!force && now - this.lastReport < this.intervalMs) return;
    this.lastReport = now;
    this.report(this.snapshot(phase));
  }
}
