/**
 * The cluster store: a small, durable, ordered key-value map with atomic multi-key commits. The embedded
 * implementation uses SQLite; the clustering issue adds etcd behind the same interface. Values are JSON-able
 * objects; keys are '/'-separated paths.
 */
export type StoreOp = { op: 'put'; key: string; value: unknown } | { op: 'delete'; key: string };

export interface KeyValue<T = unknown> {
  key: string;
  value: T;
}

export interface ClusterStore {
  get<T>(key: string): Promise<T | undefined>;
  /** Every entry whose key starts with `prefix`, in key order. */
  list<T>(prefix: string): Promise<KeyValue<T>[]>;
  /** Applies all ops atomically and durably: after it resolves, a crash keeps all of them; before, none. */
  commit(ops: readonly StoreOp[]): Promise<void>;
  /**
   * Compare-and-set of one key, atomically: when the key's current value equals `expected` (compared as JSON;
   * `undefined` means "absent"), sets it to `value` (`undefined` deletes it) and resolves true; otherwise changes
   * nothing and resolves false. Leases and "run once" decisions shared by several nodes are built on it.
   */
  compareAndSet(key: string, expected: unknown, value: unknown): Promise<boolean>;
  close(): Promise<void>;
}
