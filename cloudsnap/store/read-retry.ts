/**
 * How a store retries a read that failed part-way or went silent: bounded attempts with exponential backoff and
 * jitter, and an idle timer that abandons an answer that sends nothing for too long.
 */
import { FerryError, isFerryError } from '../../common/index.js';

/** Settings of reads that fail or stall (every network backend's `get`). */
export interface ReadRetryOptions {
  /**
   * Attempts of a read that bring no new bytes, including the first, before the read fails with the last error;
   * default 5. An attempt that received part of the body before it broke does not count: the next one resumes.
   */
  attempts?: number;
  /** Wait before the second attempt in milliseconds, doubled for each next one, with up to 50% jitter; default 200. */
  baseDelayMs?: number;
  /** Longest wait between attempts in milliseconds; default 5000. */
  maxDelayMs?: number;
  /**
   * Milliseconds a read may receive nothing (waiting for its answer, or within its body) before it is abandoned and
   * retried; default 30000.
   */
  idleTimeoutMs?: number;
}

export type ReadRetry = Required<ReadRetryOptions>;

export function readRetry(options: ReadRetryOptions | undefined): ReadRetry {
  return {
    attempts: Math.max(1, options?.attempts ?? 5),
    baseDelayMs: options?.baseDelayMs ?? 200,
    maxDelayMs: options?.maxDelayMs ?? 5000,
    idleTimeoutMs: options?.idleTimeoutMs ?? 30_000,
  };
}

/** The wait after the `failures`-th failure (1-based). */
export function backoffDelay(retry: ReadRetry, failures: number): number {
  const exp = Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** Math.max(0, failures - 1));
  return Math.round(exp * (0.5 + Math.random() / 2));
}

/** Waits `ms`, or rejects with the signal's reason when it aborts first. */
export function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Aborts its `signal` (and calls `onIdle`) when `touch` has not been called for `ms`. The abort reason is an
 * UNAVAILABLE FerryError naming what went silent, which a read loop retries.
 */
export class IdleTimer {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  readonly signal: AbortSignal;

  constructor(
    private readonly ms: number,
    private readonly what: string,
    outer: AbortSignal | undefined,
    private readonly onIdle?: (reason: FerryError) => void,
  ) {
    this.signal = outer === undefined ? this.controller.signal : AbortSignal.any([outer, this.controller.signal]);
    this.touch();
  }

  /** Whether this timer (not the caller) aborted the signal. */
  get fired(): boolean {
    return this.controller.signal.aborted;
  }

  get reason(): unknown {
    return this.controller.signal.reason;
  }

  touch(): void {
    if (this.fired) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      const reason = new FerryError(
        'UNAVAILABLE',
        `${this.what}: nothing received for ${this.ms} ms; the read is retried (raise the read idle timeout if the endpoint is this slow)`,
      );
      this.controller.abort(reason);
      this.onIdle?.(reason);
    }, this.ms);
  }

  stop(): void {
    clearTimeout(this.timer);
  }
}

/**
 * Runs `attempt` until it succeeds: UNAVAILABLE failures are retried after a backoff, up to `retry.attempts` attempts
 * that brought no progress (`progress()`, bytes in place, did not grow); other errors and aborts end it at once.
 */
export async function withReadRetry<T>(
  attempt: () => Promise<T>,
  progress: () => number,
  retry: ReadRetry,
  signal: AbortSignal | undefined,
): Promise<T> {
  let failures = 0;
  for (let round = 1; ; round++) {
    const before = progress();
    try {
      return await attempt();
    } catch (err: unknown) {
      if (signal?.aborted) throw signal.reason;
      if (!isFerryError(err, 'UNAVAILABLE')) throw err;
      if (progress() === before) failures++;
      // An attempt that brought bytes is not a failure, but a read does not go on for ever.
      if (failures >= retry.attempts || round >= retry.attempts * 8) throw err;
      await sleep(backoffDelay(retry, Math.max(1, failures)), signal);
    }
  }
}
