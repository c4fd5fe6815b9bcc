/** Ownership records in memory: for an app built without a cluster store (tests, a serverless handler). */
import type { StoreOp } from '../../node/index.js';
import type { OwnershipBackend } from './ownership-store.js';

/** Keeps JSON copies, so callers never share objects with the store. Lost when the process ends. */
export class MemoryOwnershipBackend implements OwnershipBackend {
  private readonly entries = new Map<string, string>();

  async get<T>(key: string): Promise<T | undefined> {
    const text = this.entries.get(key);
    return text === undefined ? undefined : (JSON.parse(text) as T);
  }

  async commit(ops: readonly StoreOp[]): Promise<void> {
    for (const o of ops) {
      if (o.op === 'put') this.entries.set(o.key, JSON.stringify(o.value));
      else this.entries.delete(o.key);
    }
  }
}
