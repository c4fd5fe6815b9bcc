/** Key helpers shared by the cluster store's backends. */
import { FerryError } from '../../common/index.js';
import type { ClusterStore, StoreOp } from './types.js';

/** The smallest key greater than every key that starts with `prefix` (byte order), or '' when there is none. */
export function prefixEnd(prefix: string): Buffer {
  const bytes = Buffer.from(prefix);
  for (let i = bytes.length - 1; i >= 0; i--) {
    const byte = bytes[i] ?? 0xff;
    if (byte < 0xff) {
      const end = Buffer.from(bytes.subarray(0, i + 1));
      end[i] = byte + 1;
      return end;
    }
  }
  return Buffer.alloc(0);
}

/** Byte order of two keys (the order of etcd and of SQLite's BINARY collation). */
export function compareKeys(a: string, b: string): number {
  return a === b ? 0 : Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** Checks a lease TTL: a whole number of seconds, at least 1. */
export function checkTtl(ttlSeconds: number): void {
  if (!Number.isInteger(ttlSeconds) || ttlSeconds < 1) {
    throw new FerryError(
      'INVALID_ARGUMENT',
      `a lease TTL is a whole number of seconds, at least 1 (got ${ttlSeconds})`,
    );
  }
}

/** The error of a lease that expired or was revoked. */
export function leaseGone(lease: string): FerryError {
  return new FerryError('NOT_FOUND', `lease ${lease} expired or was revoked; grant a new one`);
}

/** The error of a watch whose start revision was compacted away. */
export function compacted(from: number, compactedAt?: number): FerryError {
  const kept = compactedAt === undefined ? 'no longer has it' : `kept history only after revision ${compactedAt}`;
  return new FerryError(
    'FAILED_PRECONDITION',
    `cannot watch from revision ${from}: the store ${kept}; list the prefix again and watch from its revision`,
  );
}

/**
 * The old `compareAndSet` built on `getEntry` and `txn`: compares the current value as JSON, then writes only if
 * the key's mod revision has not moved since it was read (so a concurrent writer makes it resolve false).
 */
export async function compareAndSetByRevision(
  store: Pick<ClusterStore, 'getEntry' | 'txn'>,
  key: string,
  expected: unknown,
  value: unknown,
): Promise<boolean> {
  const entry = await store.getEntry(key);
  const current = entry === undefined ? undefined : JSON.stringify(entry.value);
  const wanted = expected === undefined ? undefined : JSON.stringify(expected);
  if (current !== wanted) return false;
  if (entry === undefined && value === undefined) return true;
  const ops: StoreOp[] = value === undefined ? [{ op: 'delete', key }] : [{ op: 'put', key, value }];
  return (await store.txn([{ key, modRevision: entry?.modRevision ?? 0 }], ops)).succeeded;
}
