/**
 * Types for the part of autocannon 8 (which ships none) that bench/api.ts uses, from its README ("API" section):
 * `autocannon(options)` without a callback returns a promise of the run's result. Latencies are in milliseconds.
 */
declare module 'autocannon' {
  interface Options {
    url: string;
    /** Concurrent connections; default 10. */
    connections?: number;
    /** Seconds to run; default 10. */
    duration?: number;
    /** Requests per connection in flight at once; default 1. */
    pipelining?: number;
    method?: string;
    headers?: Record<string, string>;
    body?: string;
    /** Seconds before a request counts as timed out; default 10. */
    timeout?: number;
    title?: string;
  }

  /** Percentiles and summary of one measured quantity. */
  interface Histogram {
    average: number;
    mean: number;
    stddev: number;
    min: number;
    max: number;
    total: number;
    p50: number;
    p90: number;
    p97_5: number;
    p99: number;
    p99_9: number;
  }

  interface Result {
    title?: string;
    url: string;
    connections: number;
    /** Seconds the run lasted. */
    duration: number;
    errors: number;
    timeouts: number;
    non2xx: number;
    '2xx': number;
    /** Milliseconds per request. */
    latency: Histogram & { totalCount: number };
    /** Requests per second (per one-second sample); `total` is all requests completed. */
    requests: Histogram & { sent: number };
    /** Bytes per second. */
    throughput: Histogram;
  }

  function autocannon(options: Options): Promise<Result>;
  export default autocannon;
}
