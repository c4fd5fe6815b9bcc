/**
 * Bandwidth caps of replica copies (docs/REPLICATION.md, R17): a token bucket per volume and one per node, taken by
 * the copies of fills and resyncs only (live writes never wait). A cap is bytes per second; 0 or absent is none. The
 * caps change at run time (`setNodeRate`, `setVolumeRate`, fed by watches of the settings and of the records): a copy
 * waiting for tokens sees the new rate at once.
 */

/** What a copy takes its bytes from before sending them. */
export interface CopyLimiter {
  /** Resolves once `bytes` may be sent (at once when uncapped); rejects with the signal's reason when aborted. */
  take(bytes: number, signal?: AbortSignal): Promise<void>;
}

/** A clock for the buckets (tests pass a fake one that advances on `sleep`). */
export interface BucketClock {
  /** Milliseconds, monotonic. */
  now(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

export interface TokenBucketOptions {
  /** Bytes per second; 0: uncapped. */
  rate: number;
  /** Seconds of tokens the bucket holds at most (the burst). Default 0.25. */
  burstSeconds?: number;
  clock?: BucketClock;
}

/** The real clock. */
export const systemClock: BucketClock = {
  now: () => performance.now(),
  sleep: (ms, signal) =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted === true) {
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
    }),
};

/**
 * A token bucket of `rate` bytes per second. Takers are served in order; a take larger than the burst is let through
 * once the bucket is full and leaves it in debt, so the long-run rate holds for any step size.
 */
export class TokenBucket implements CopyLimiter {
  private rateValue: number;
  private readonly burstSeconds: number;
  private readonly clock: BucketClock;
  private tokens: number;
  private last: number;
  /** The takes in line, one after another. */
  private line: Promise<void> = Promise.resolve();
  /** Woken when the rate changes (a waiter recomputes its wait). */
  private wake: (() => void) | undefined;

  constructor(options: TokenBucketOptions) {
    this.rateValue = Math.max(0, options.rate);
    this.burstSeconds = options.burstSeconds ?? 0.25;
    this.clock = options.clock ?? systemClock;
    this.last = this.clock.now();
    this.tokens = this.capacity;
  }

  /** Bytes per second (0: uncapped). */
  get rate(): number {
    return this.rateValue;
  }

  private get capacity(): number {
    return this.rateValue * this.burstSeconds;
  }

  /** Changes the rate; waiting takes go on under the new one. */
  setRate(rate: number): void {
    this.refill();
    this.rateValue = Math.max(0, rate);
    this.tokens = Math.min(this.tokens, this.capacity);
    this.wake?.();
  }

  take(bytes: number, signal?: AbortSignal): Promise<void> {
    const run = this.line.then(() => this.takeNow(bytes, signal));
    this.line = run.catch(() => undefined);
    return run;
  }

  private refill(): void {
    const now = this.clock.now();
    if (this.rateValue > 0)
      this.tokens = Math.min(this.capacity, this.tokens + ((now - this.last) / 1000) * this.rateValue);
    this.last = now;
  }

  private async takeNow(bytes: number, signal?: AbortSignal): Promise<void> {
    for (;;) {
      if (signal?.aborted === true) throw signal.reason;
      this.refill();
      if (this.rateValue === 0) return;
      const need = Math.min(bytes, this.capacity);
      if (this.tokens >= need) {
        this.tokens -= bytes;
        return;
      }
      const ms = Math.max(1, Math.ceil(((need - this.tokens) / this.rateValue) * 1000));
      // Sleeps until the tokens are there, or until the rate changes.
      const changed = new Promise<void>((resolve) => {
        this.wake = resolve;
      });
      await Promise.race([this.clock.sleep(ms, signal), changed]);
      this.wake = undefined;
    }
  }
}

/** Several limiters at once: a take waits for each in turn (the volume's, then the node's). */
function allOf(limiters: readonly CopyLimiter[]): CopyLimiter {
  return {
    async take(bytes, signal) {
      for (const l of limiters) await l.take(bytes, signal);
    },
  };
}

/**
 * The caps of one node: its bucket (ReplicationSettings.resync_bandwidth) and one per volume
 * (VolumeRecord.resync_bandwidth). A volume's cap absent: the node's bucket only; 0: no cap at all for that volume;
 * more: its own bucket, then the node's.
 */
export class BandwidthCaps {
  private readonly node: TokenBucket;
  private readonly volumes = new Map<string, { rate: number | undefined; bucket?: TokenBucket }>();

  constructor(private readonly clock: BucketClock = systemClock) {
    this.node = new TokenBucket({ rate: 0, clock });
  }

  /** The node's cap (bytes per second; 0 or undefined: none). */
  setNodeRate(rate: number | undefined): void {
    this.node.setRate(rate ?? 0);
  }

  get nodeRate(): number {
    return this.node.rate;
  }

  /** Volume `id`'s cap (its record's `resync_bandwidth`). */
  setVolumeRate(id: string, rate: number | undefined): void {
    const entry = this.volumes.get(id) ?? { rate: undefined };
    entry.rate = rate;
    if (rate !== undefined && rate > 0) {
      if (entry.bucket === undefined) entry.bucket = new TokenBucket({ rate, clock: this.clock });
      else entry.bucket.setRate(rate);
    } else {
      entry.bucket?.setRate(0);
    }
    this.volumes.set(id, entry);
  }

  /** Forgets volume `id`'s cap. */
  forget(id: string): void {
    this.volumes.get(id)?.bucket?.setRate(0);
    this.volumes.delete(id);
  }

  /** What the copies of volume `id` take their bytes from (follows later rate changes). */
  limiterFor(id: string): CopyLimiter {
    return {
      take: async (bytes, signal) => {
        const entry = this.volumes.get(id);
        if (entry?.rate === 0) return;
        await allOf(entry?.bucket !== undefined ? [entry.bucket, this.node] : [this.node]).take(bytes, signal);
      },
    };
  }
}
