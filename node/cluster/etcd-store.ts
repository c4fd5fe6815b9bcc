/**
 * The cluster store on etcd v3 (the `etcd3` client), for clusters of many nodes. Values are stored as JSON text;
 * revisions, transactions, watches and leases are etcd's own. The client is passed in (`new EtcdStore(client)`);
 * `openEtcdStore(urls)` builds one with Ferry's defaults.
 */
import { Etcd3, EtcdLeaseInvalidError, type IKeyValue, type IRequestOp, type IWatchResponse } from 'etcd3';
import { FerryError } from '../../common/index.js';
import { checkTtl, compacted, compareAndSetByRevision, leaseGone, prefixEnd } from './keys.js';
import type {
  ClusterStore,
  Compare,
  Entry,
  KeyValue,
  LeaseId,
  ListOptions,
  ListPage,
  StoreOp,
  TxnResult,
  Watch,
  WatchEvent,
  WatchOptions,
} from './types.js';
import { WatchQueue } from './watch-queue.js';

/** The pages `list` reads a prefix in. */
const LIST_PAGE = 1000;

/** etcd's range end of a prefix ("\0" = to the end of the key space). */
function rangeEnd(prefix: string): Buffer {
  const end = prefixEnd(prefix);
  return end.length === 0 ? Buffer.from([0]) : end;
}

function toEntry<T>(kv: IKeyValue, strip: number): Entry<T> {
  return {
    key: kv.key.toString().slice(strip),
    value: JSON.parse(kv.value.toString()) as T,
    createRevision: Number(kv.create_revision),
    modRevision: Number(kv.mod_revision),
    ...(kv.lease !== '0' && kv.lease !== '' && { lease: kv.lease }),
  };
}

/** Turns the client's errors into FerryErrors at this boundary. */
function translate(err: unknown, what: string): FerryError {
  if (err instanceof FerryError) return err;
  if (err instanceof EtcdLeaseInvalidError) {
    return new FerryError('NOT_FOUND', 'the lease expired or was revoked; grant a new one', { cause: err });
  }
  return new FerryError('UNAVAILABLE', `the cluster store (etcd) did not answer ${what}: check that etcd runs`, {
    cause: err,
  });
}

export class EtcdStore implements ClusterStore {
  private readonly watches = new Set<WatchQueue<unknown>>();

  /**
   * @param client An etcd3 client; closed by `close()` when `ownsClient` (as `openEtcdStore` makes it).
   * @param namespace Put before every key in etcd and taken off every key read (e.g. `/ferry-clusters/c1`), so
   *   several clusters share one etcd without seeing each other's keys; default none.
   */
  constructor(
    private readonly client: Etcd3,
    private readonly ownsClient = false,
    private readonly namespace = '',
  ) {}

  private key(text: string): Buffer {
    return Buffer.from(this.namespace + text);
  }

  async get<T>(k: string): Promise<T | undefined> {
    return (await this.getEntry<T>(k))?.value;
  }

  async getEntry<T>(k: string): Promise<Entry<T> | undefined> {
    const res = await this.call('get', () => this.client.kv.range({ key: this.key(k) }));
    const kv = res.kvs[0];
    return kv === undefined ? undefined : toEntry<T>(kv, this.strip);
  }

  /** How many characters of a key read from etcd are the namespace (Buffer length: the namespace is ASCII). */
  private get strip(): number {
    return Buffer.byteLength(this.namespace);
  }

  async revision(): Promise<number> {
    const res = await this.call('revision', () => this.client.kv.range({ key: Buffer.from([0]), count_only: true }));
    return Number(res.header.revision);
  }

  async list<T>(prefix: string): Promise<KeyValue<T>[]> {
    const all: KeyValue<T>[] = [];
    let after: string | undefined;
    do {
      const page: ListPage<T> = await this.listPage<T>(prefix, {
        limit: LIST_PAGE,
        ...(after !== undefined && { after }),
      });
      for (const e of page.entries) all.push({ key: e.key, value: e.value });
      after = page.next;
    } while (after !== undefined);
    return all;
  }

  async listPage<T>(prefix: string, options: ListOptions = {}): Promise<ListPage<T>> {
    const limit = options.limit ?? 1000;
    const start =
      options.after === undefined ? this.key(prefix) : Buffer.concat([this.key(options.after), Buffer.from([0])]);
    const res = await this.call('list', () =>
      this.client.kv.range({
        key: start,
        range_end: rangeEnd(this.namespace + prefix),
        limit,
        sort_order: 'Ascend',
        sort_target: 'Key',
      }),
    );
    const entries = res.kvs.map((kv) => toEntry<T>(kv, this.strip));
    const last = entries.at(-1);
    return {
      entries,
      ...(res.more && last !== undefined && { next: last.key }),
      revision: Number(res.header.revision),
    };
  }

  async commit(ops: readonly StoreOp[]): Promise<void> {
    if (ops.length === 0) return;
    await this.txn([], ops);
  }

  async put(k: string, value: unknown, options: { lease?: LeaseId } = {}): Promise<number> {
    const res = await this.call('put', () =>
      this.client.kv.put({
        key: this.key(k),
        value: Buffer.from(JSON.stringify(value)),
        ...(options.lease !== undefined && { lease: options.lease }),
      }),
    );
    return Number(res.header.revision);
  }

  async delete(k: string): Promise<boolean> {
    const res = await this.call('delete', () => this.client.kv.deleteRange({ key: this.key(k) }));
    return Number(res.deleted) > 0;
  }

  async txn(compares: readonly Compare[], ops: readonly StoreOp[]): Promise<TxnResult> {
    const success: IRequestOp[] = ops.map((o) =>
      o.op === 'put'
        ? {
            request_put: {
              key: this.key(o.key),
              value: Buffer.from(JSON.stringify(o.value)),
              ...(o.lease !== undefined && { lease: o.lease }),
            },
          }
        : { request_delete_range: { key: this.key(o.key) } },
    );
    const res = await this.call('txn', () =>
      this.client.kv.txn({
        compare: compares.map((c) => ({
          key: this.key(c.key),
          target: 'Mod',
          result: 'Equal',
          mod_revision: c.modRevision,
        })),
        success,
      }),
    );
    return { succeeded: res.succeeded, revision: Number(res.header.revision) };
  }

  async compareAndSet(k: string, expected: unknown, value: unknown): Promise<boolean> {
    return compareAndSetByRevision(this, k, expected, value);
  }

  async watch<T>(prefix: string, options: WatchOptions = {}): Promise<Watch<T>> {
    const current = await this.revision();
    const from = options.fromRevision ?? current + 1;
    if (from <= current) {
      // etcd cancels a watch from a compacted revision with a bare message; a read at that revision says it plainly.
      await this.client.kv.range({ key: this.key(prefix), count_only: true, revision: from }).catch((err: unknown) => {
        if (err instanceof Error && /compacted/.test(err.message)) throw compacted(from);
        throw translate(err, 'a watch');
      });
    }
    const builder = this.client
      .watch()
      .prefix(this.namespace + prefix)
      .startRevision(String(from));
    const watcher = await this.call('watch', () => builder.create());
    const queue = new WatchQueue<T>(async () => {
      this.watches.delete(queue as WatchQueue<unknown>);
      await watcher.cancel().catch(() => undefined);
    });
    this.watches.add(queue as WatchQueue<unknown>);
    watcher.on('data', (res: IWatchResponse) => {
      queue.push(
        res.events.map((e): WatchEvent<T> => {
          const revision = Number(e.kv.mod_revision);
          const k = e.kv.key.toString().slice(this.strip);
          return e.type === 'Put'
            ? { type: 'put', key: k, value: JSON.parse(e.kv.value.toString()) as T, revision }
            : { type: 'delete', key: k, revision };
        }),
      );
    });
    watcher.on('error', (err: Error) => {
      queue.fail(/compact/i.test(err.message) ? compacted(from) : translate(err, 'a watch (it was canceled)'));
    });
    return queue;
  }

  async grantLease(ttlSeconds: number): Promise<LeaseId> {
    checkTtl(ttlSeconds);
    const res = await this.call('grant', () => this.client.leaseClient.leaseGrant({ TTL: ttlSeconds, ID: 0 }));
    return res.ID;
  }

  async keepAlive(lease: LeaseId): Promise<void> {
    const stream = await this.call('keep-alive', () => this.client.leaseClient.leaseKeepAlive());
    try {
      const ttl = await new Promise<number>((resolve, reject) => {
        stream.on('data', (res) => resolve(Number(res.TTL)));
        stream.on('error', reject);
        stream.on('end', () => reject(new Error('the keep-alive stream ended')));
        stream.write({ ID: lease });
      });
      if (ttl <= 0) throw leaseGone(lease);
    } catch (err: unknown) {
      throw translate(err, 'a lease keep-alive');
    } finally {
      stream.end();
    }
  }

  async revokeLease(lease: LeaseId): Promise<void> {
    try {
      await this.client.leaseClient.leaseRevoke({ ID: lease });
    } catch (err: unknown) {
      if (err instanceof EtcdLeaseInvalidError) return;
      throw translate(err, 'a lease revoke');
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.watches].map((w) => w.close()));
    if (this.ownsClient) this.client.close();
  }

  private async call<R>(what: string, fn: () => Promise<R>): Promise<R> {
    try {
      return await fn();
    } catch (err: unknown) {
      throw translate(err, `a ${what}`);
    }
  }
}

/** Options of openEtcdStore. */
export interface EtcdStoreOptions {
  /** Longest wait between two reconnects of a watch, ms; default 1000 (etcd3's own default grows to 30 s). */
  maxWatchBackoffMs?: number;
  /** How long a call waits to connect, ms; default 5000. */
  dialTimeoutMs?: number;
  /** Prefix of every key in etcd (one cluster's keys in a shared etcd, e.g. `/ferry-clusters/c1`); default none. */
  namespace?: string;
}

/** A reconnect backoff that doubles from 50 ms up to a ceiling (the shape etcd3 takes for `watchBackoff`). */
function backoff(ms: number, maxMs: number): { duration: number; next(): ReturnType<typeof backoff> } {
  return { duration: ms, next: () => backoff(Math.min(maxMs, ms * 2), maxMs) };
}

/** An EtcdStore with its own client on `urls` (e.g. `['http://10.0.0.1:2379']`); closing the store closes it. */
export function openEtcdStore(urls: readonly string[], options: EtcdStoreOptions = {}): EtcdStore {
  if (urls.length === 0) throw new FerryError('INVALID_ARGUMENT', 'give at least one etcd URL, e.g. http://host:2379');
  const client = new Etcd3({
    hosts: [...urls],
    dialTimeout: options.dialTimeoutMs ?? 5000,
    faultHandling: { watchBackoff: backoff(50, options.maxWatchBackoffMs ?? 1000) },
  });
  return new EtcdStore(client, true, options.namespace ?? '');
}
