/**
 * Runs `fn` over `items` with at most `limit` calls in flight (N workers over one shared cursor), and settles only
 * after every started call has settled; rejects with the first error, after the others finish.
 */
export async function forEachLimit<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
  signal?: AbortSignal,
): Promise<void> {
  let next = 0;
  let failed = false;
  let firstError: unknown;
  const worker = async (): Promise<void> => {
    while (!failed && next < items.length) {
      if (signal?.aborted) {
        failed = true;
        firstError = signal.reason;
        return;
      }
      const item = items[next++] as T;
      try {
        await fn(item);
      } catch (err: unknown) {
        if (!failed) firstError = err;
        failed = true;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failed) throw firstError;
}
