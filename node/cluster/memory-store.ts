/**
 * A ClusterStore in memory, for a process that has no cluster store of its own (the serverless handler keeps its
 * one credential and its empty job list here). Lost when the process ends.
 */
import type { ClusterStore, KeyValue, StoreOp } from './types.js';

/** Keeps JSON texts, so callers never share objects with the store. */
export class InMemoryClusterStore implements ClusterStore {
  private readonly entries = new Map<string, string>();

  async get<T>(key: string): Promise<T | undefined> {
    const text = this.entries.get(key);
    return text === undefined ? undefined : (JSON.parse(text) as T);
  }

  async list<T>(prefix: string): Promise<KeyValue<T>[]> {
    return [...this.entries]
      .filter(([key]) => key.startsWith(prefix))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([key, text]) => ({ key, value: JSON.parse(text) as T }));
  }

  async commit(ops: readonly StoreOp[]): Promise<void> {
    for (const o of ops) {
      if (o.op === 'put') this.entries.set(o.key, JSON.stringify(o.value));
      else this.entries.delete(o.key);
    }
  }

  async compareAndSet(key: string, expected: unknown, value: unknown): Promise<boolean> {
    const current = this.entries.get(key);
    const wanted = expected === undefined ? undefined : JSON.stringify(expected);
    if (current !== wanted) return false;
    if (value === undefined) this.entries.delete(key);
    else this.entries.set(key, JSON.stringify(value));
    return true;
  }

  async close(): Promise<void> {}
}
