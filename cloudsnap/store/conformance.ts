/**
 * The one conformance suite every ObjectStore backend passes (run with vitest from a test file; not part of the
 * store's public face). Each backend gets an empty bucket/container/directory from `setup`.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ErrorCode, isFerryError } from '../../common/index.js';
import { compareKeys } from './keys.js';
import type { ObjectStore } from './types.js';

/** What a backend's test file hands the suite. */
export interface ConformanceSetup {
  /** A store on an empty bucket (or prefix) the suite may fill and empty. */
  store: ObjectStore;
  /** The same endpoint and bucket with a wrong secret. */
  badCredentials?: ObjectStore;
  /** The same endpoint and credentials, pointed at a bucket that does not exist. */
  missingBucket?: ObjectStore;
  /** What missingBucket's NOT_FOUND messages must name. Default: the bucket (or directory) of its location. */
  missingBucketName?: string;
  cleanup(): Promise<void>;
}

const MiB = 1024 * 1024;

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err: unknown) {
    return err;
  }
  throw new Error('expected the call to reject, it resolved');
}

async function expectCode(p: Promise<unknown>, ...codes: ErrorCode[]): Promise<Error> {
  const err = await rejection(p);
  if (!isFerryError(err)) throw new Error(`expected a FerryError, got ${String(err)}`, { cause: err });
  expect(codes).toContain(err.code);
  return err;
}

/** Every key under `prefix`, page by page. */
async function listAll(store: ObjectStore, prefix: string, maxKeys?: number): Promise<string[][]> {
  const pages: string[][] = [];
  let token: string | undefined;
  do {
    const page = await store.list(prefix, { continuationToken: token, maxKeys });
    pages.push(page.objects.map((o) => o.key));
    token = page.continuationToken;
  } while (token !== undefined);
  return pages;
}

async function putAll(store: ObjectStore, keys: string[], body: (k: string) => Buffer): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < keys.length) {
      const key = keys[next++]!;
      await store.put(key, body(key));
    }
  };
  await Promise.all(Array.from({ length: 32 }, worker));
}

/** The bucket, container or directory a location names (`s3://b/p` -> 'b', `file:///x/y` -> '/x/y'). */
function bucketOf(location: string): string {
  const url = new URL(location);
  return url.protocol === 'file:' ? decodeURIComponent(url.pathname) : url.host;
}

/** What the suite's parts share: the store and setup (set before the first test) and this run's key prefix. */
interface Suite {
  ctx: ConformanceSetup;
  store: ObjectStore;
  k: (key: string) => string;
}

/**
 * `credentialed: false` is for stores that take no credentials (the directory store): the wrong-credentials case
 * does not apply to them and is not registered.
 */
export function describeObjectStoreConformance(
  name: string,
  setup: () => Promise<ConformanceSetup>,
  options: { credentialed?: boolean } = {},
): void {
  describe(`ObjectStore conformance: ${name}`, () => {
    const run = randomBytes(4).toString('hex');
    const t = { k: (key: string) => `c-${run}/${key}` } as Suite;

    beforeAll(async () => {
      t.ctx = await setup();
      t.store = t.ctx.store;
    });

    afterAll(async () => {
      if (t.ctx === undefined) return;
      for (const page of await listAll(t.store, `c-${run}/`)) await t.store.delete(page);
      await t.ctx.cleanup();
    });

    // Registered in this order: later cases read objects earlier ones wrote (`rt/one`, `many/`).
    describeObjects(t);
    describeListing(t);
    describeKeys(t);
    describeFailures(t, name, options);
  });
}

/** Objects: round trips, ranges, reads into a buffer, heads, overwrites, create-only puts. */
function describeObjects(t: Suite): void {
  const { k } = t;
  it('round-trips an empty object, one byte and 20 MiB, and heads their sizes', async () => {
    const { store } = t;
    const big = randomBytes(20 * MiB);
    for (const [key, body] of [
      [k('rt/empty'), Buffer.alloc(0)],
      [k('rt/one'), Buffer.from([0xa5])],
      [k('rt/big'), big],
    ] as const) {
      await store.put(key, body);
      const back = await store.get(key);
      expect(back.length).toBe(body.length);
      expect(back.equals(body)).toBe(true);
      expect((await store.head(key))?.size).toBe(body.length);
    }
  });

  it('reads ranges at the start, middle and end, and rejects ranges past the end', async () => {
    const { store } = t;
    const body = randomBytes(1000);
    await store.put(k('range/obj'), body);
    for (const [offset, length] of [
      [0, 10],
      [400, 100],
      [990, 10],
      [0, 1000],
    ] as const) {
      const part = await store.get(k('range/obj'), { range: { offset, length } });
      expect(part.equals(body.subarray(offset, offset + length))).toBe(true);
    }
    await expectCode(store.get(k('range/obj'), { range: { offset: 995, length: 10 } }), 'INVALID_ARGUMENT');
    await expectCode(store.get(k('range/obj'), { range: { offset: 1000, length: 1 } }), 'INVALID_ARGUMENT');
    await expectCode(store.get(k('range/obj'), { range: { offset: 5000, length: 1 } }), 'INVALID_ARGUMENT');
    await expectCode(store.get(k('range/obj'), { range: { offset: 0, length: 0 } }), 'INVALID_ARGUMENT');
  });

  it("reads into a caller's buffer: the same bytes, whether or not the store uses the buffer", async () => {
    const { store } = t;
    const body = randomBytes(5000);
    await store.put(k('into/obj'), body);
    const into = Buffer.alloc(8192, 0xee);
    const part = await store.get(k('into/obj'), { range: { offset: 1000, length: 3000 }, into });
    expect(part.equals(body.subarray(1000, 4000))).toBe(true);
    // Too small a buffer is not used.
    const small = Buffer.alloc(10);
    expect((await store.get(k('into/obj'), { into: small })).equals(body)).toBe(true);
    expect(small.equals(Buffer.alloc(10))).toBe(true);
  });

  it('heads present and absent keys', async () => {
    const { store } = t;
    await store.put(k('head/present'), Buffer.from('hello'));
    const info = await store.head(k('head/present'));
    expect(info?.key).toBe(k('head/present'));
    expect(info?.size).toBe(5);
    expect(await store.head(k('head/absent'))).toBeUndefined();
  });

  it('overwrites an existing key', async () => {
    const { store } = t;
    await store.put(k('over/obj'), Buffer.from('first version'));
    await store.put(k('over/obj'), Buffer.from('second'));
    expect((await store.get(k('over/obj'))).toString()).toBe('second');
    expect((await store.head(k('over/obj')))?.size).toBe(6);
  });

  it('creates only when absent with ifNoneMatch (atomically when conditionalCreate)', async () => {
    const { store } = t;
    await store.put(k('cc/new'), Buffer.from('one'), { ifNoneMatch: true });
    await expectCode(store.put(k('cc/new'), Buffer.from('two'), { ifNoneMatch: true }), 'ALREADY_EXISTS');
    expect((await store.get(k('cc/new'))).toString()).toBe('one');
    if (!store.conditionalCreate) return; // documented: a head then a put, racy under concurrency
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, (_, i) => store.put(k('cc/race'), Buffer.from(`writer ${i}`), { ifNoneMatch: true })),
    );
    const winners = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
    expect(winners).toHaveLength(1);
    for (const r of results) {
      if (r.status === 'rejected') expect(isFerryError(r.reason, 'ALREADY_EXISTS')).toBe(true);
    }
    expect((await store.get(k('cc/race'))).toString()).toBe(`writer ${winners[0]}`);
  });
}

/** Listing in byte order and by pages, and deletes of many keys or one. */
function describeListing(t: Suite): void {
  const { k } = t;
  it('lists under a prefix in byte order, with sizes', async () => {
    const { store } = t;
    const keys = ['p/a-b', 'p/a/c', 'p/a/d/e', 'p/b', 'p/B', 'p/a b', 'p/ab', 'px', 'p0'].map(k);
    await putAll(store, keys, (key) => Buffer.from(key));
    const under = (prefix: string) => keys.filter((key) => key.startsWith(prefix)).sort(compareKeys);
    for (const prefix of [k('p/'), k('p/a'), k('p/a/'), k('p'), k('nothing/')]) {
      const pages = await listAll(store, prefix);
      expect(pages.flat()).toEqual(under(prefix));
    }
    const page = await store.list(k('p/b'));
    expect(page.objects).toHaveLength(1);
    expect(page.objects[0]?.size).toBe(k('p/b').length);
    expect(page.continuationToken).toBeUndefined();
  });

  const many = Array.from({ length: 2500 }, (_, i) => k(`many/${String(i).padStart(5, '0')}`));

  it('pages through 2,500 keys with maxKeys 1000: 3 pages, none lost or repeated', async () => {
    const { store } = t;
    await putAll(store, many, () => Buffer.from('x'));
    const pages = await listAll(store, k('many/'), 1000);
    expect(pages.map((p) => p.length)).toEqual([1000, 1000, 500]);
    expect(pages.flat()).toEqual(many);
    const small = await listAll(store, k('many/0000'), 3);
    expect(small.flat()).toEqual(many.slice(0, 10));
  });

  it('deletes 2,500 keys plus missing ones in one call', async () => {
    const { store } = t;
    const missing = Array.from({ length: 50 }, (_, i) => k(`many/missing-${i}`));
    await store.delete([...many, ...missing]);
    expect((await listAll(store, k('many/'))).flat()).toEqual([]);
    expect(await store.head(many[0]!)).toBeUndefined();
    await store.delete([]);
    await store.delete([k('many/never-there')]);
  });

  it('deletes one key alone (S3: a plain DELETE, not a multi-object one)', async () => {
    const { store } = t;
    await store.put(k('one/a'), Buffer.from('a'));
    await store.put(k('one/b'), Buffer.from('b'));
    await store.delete([k('one/a')]);
    expect(await store.head(k('one/a'))).toBeUndefined();
    expect(await store.head(k('one/b'))).toBeDefined();
    await store.delete([k('one/b')]);
    expect((await listAll(store, k('one/'))).flat()).toEqual([]);
  });
}

/** Keys: missing ones, odd characters, malformed ones. */
function describeKeys(t: Suite): void {
  const { k } = t;
  it('rejects a get of a missing key with NOT_FOUND', async () => {
    const { store } = t;
    await expectCode(store.get(k('missing/key')), 'NOT_FOUND');
    await expectCode(store.get(k('missing/key'), { range: { offset: 0, length: 1 } }), 'NOT_FOUND');
  });

  it('round-trips keys with spaces, unicode, +, % and other punctuation', async () => {
    const { store } = t;
    const odd = [
      'odd/with space/file name.bin',
      'odd/ünïcødé/日本語/🚀',
      'odd/plus+sign+',
      'odd/per%cent%20and%2F',
      "odd/punct~!*()'=;:@&$,[]",
      'odd/a.b/.hidden',
    ].map(k);
    for (const key of odd) {
      await store.put(key, Buffer.from(key));
      expect((await store.get(key)).toString()).toBe(key);
      expect((await store.head(key))?.size).toBe(Buffer.byteLength(key));
    }
    expect((await listAll(store, k('odd/'))).flat().sort()).toEqual([...odd].sort());
    await store.delete(odd);
    expect((await listAll(store, k('odd/'))).flat()).toEqual([]);
  });

  it('rejects malformed keys with INVALID_ARGUMENT', async () => {
    const { store } = t;
    for (const key of ['', '../escape', 'a/../../b', '/absolute', 'a//b', 'trailing/', 'back\\slash', 'nul\0x']) {
      await expectCode(store.put(key, Buffer.from('x')), 'INVALID_ARGUMENT');
      await expectCode(store.get(key), 'INVALID_ARGUMENT');
    }
  });
}

/** Failures: aborted calls, wrong credentials, a missing bucket. */
function describeFailures(t: Suite, name: string, options: { credentialed?: boolean }): void {
  const { k } = t;
  it('rejects promptly when the signal is aborted', async () => {
    const { store } = t;
    const signal = AbortSignal.abort();
    const started = Date.now();
    for (const call of [
      () => store.put(k('abort/a'), Buffer.from('x'), { signal }),
      () => store.get(k('rt/one'), { signal }),
      () => store.head(k('rt/one'), { signal }),
      () => store.list(k(''), { signal }),
      () => store.delete([k('abort/a')], { signal }),
    ]) {
      expect(await rejection(call())).toBe(signal.reason);
    }
    const controller = new AbortController();
    const inFlight = store.put(k('abort/big'), randomBytes(20 * MiB), { signal: controller.signal });
    setTimeout(() => controller.abort(), 1);
    expect(await rejection(inFlight)).toBe(controller.signal.reason);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  if (options.credentialed !== false) {
    it('rejects wrong credentials with UNAUTHENTICATED or PERMISSION_DENIED', async () => {
      const { ctx } = t;
      const bad = ctx.badCredentials;
      if (bad === undefined) throw new Error(`${name}: setup must provide badCredentials`);
      await expectCode(bad.put(k('auth/x'), Buffer.from('x')), 'UNAUTHENTICATED', 'PERMISSION_DENIED');
      await expectCode(bad.get(k('rt/one')), 'UNAUTHENTICATED', 'PERMISSION_DENIED');
      await expectCode(bad.head(k('rt/one')), 'UNAUTHENTICATED', 'PERMISSION_DENIED');
      await expectCode(bad.list(k('')), 'UNAUTHENTICATED', 'PERMISSION_DENIED');
      await expectCode(bad.delete([k('rt/one')]), 'UNAUTHENTICATED', 'PERMISSION_DENIED');
    });
  }

  it('rejects every call on a missing bucket with NOT_FOUND naming it', async () => {
    const { ctx } = t;
    const missing = ctx.missingBucket;
    if (missing === undefined) throw new Error(`${name}: setup must provide missingBucket`);
    const bucket = ctx.missingBucketName ?? bucketOf(missing.location);
    for (const call of [
      () => missing.put('x', Buffer.from('x')),
      () => missing.put('x', Buffer.from('x'), { ifNoneMatch: true }),
      () => missing.get('x'),
      () => missing.head('x'),
      () => missing.list(''),
      () => missing.delete(['x']),
    ]) {
      const err = await expectCode(call(), 'NOT_FOUND');
      expect(err.message).toContain(bucket);
    }
  });
}
