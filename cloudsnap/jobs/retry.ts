/**
 * Retrying with exponential backoff: after a failed attempt that `retryable` accepts, wait baseDelayMs, then twice
 * that, then four times that ... up to `retries` more attempts. Jobs use it around opening the repository, where a
 * key provider that cannot be reached fails fast with UNAVAILABLE.
 */
import { isFerryError } from '../../common/index.js';

/** How a job retries an unreachable key provider (or object store) while it opens the repository. */
export interface RetryOptions {
  /** Attempts after the first; default 3 (so waits of 1 s, 2 s, 4 s with the default delay). */
  retries?: number;
  /** Wait before the first retry in milliseconds, doubled for each next one; default 1000. */
  baseDelayMs?: number;
}

/** What `withRetry` needs besides the options. */
export interface RetryRun {
  signal?: AbortSignal;
  /** Whether an error is worth another attempt; default: UNAVAILABLE FerryErrors. */
  retryable?: (err: unknown) => boolean;
  /** Called before each wait with the error, the attempt that failed (1-based) and the wait. */
  onRetry?: (err: unknown, attempt: number, delayMs: number) => void;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Runs `fn`, retrying as `options` say; rejects with the last error. */
export async function withRetry<T>(fn: () => Promise<T>, options: RetryOptions, run: RetryRun = {}): Promise<T> {
  const retries = options.retries ?? 3;
  const base = options.baseDelayMs ?? 1000;
  const retryable = run.retryable ?? ((err: unknown) => isFerryError(err, 'UNAVAILABLE'));
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err: unknown) {
      if (attempt > retries || !retryable(err) || run.signal?.aborted) throw err;
      const delay = base * 2 ** (attempt - 1);
      run.onRetry?.(err, attempt, delay);
      await sleep(delay, run.signal);
    }
  }
}
