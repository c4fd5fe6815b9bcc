/**
 * Cluster pairs between two in-process "clusters" (each a store, a vault and an API server whose port also serves
 * the peer link): the token, the pair on both sides, the link's authentication, and what a bad token changes.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isFerryError } from '../../common/index.js';
import { MemoryStore } from '../../node/index.js';
import { type RunningApiServer, startApiServer } from '../server.js';
import { PeerClient } from './channel.js';
import { peerApp } from './peer-app.js';
import { PAIR_TOKENS_PREFIX, type TokenRecord } from './records.js';
import { DirectorySecrets } from './secret-vault.js';
import { PairService } from './service.js';

interface Side {
  store: MemoryStore;
  pairs: PairService;
  server: RunningApiServer;
}

let dir: string;
let a: Side;
let b: Side;

async function side(name: string): Promise<Side> {
  const store = new MemoryStore();
  let url = '';
  const pairs = await PairService.open({
    store,
    vault: new DirectorySecrets(join(dir, name)),
    cluster: async () => ({ id: `id-${name}`, name, created: '' }),
    localUrl: () => url,
  });
  const api = new Hono().get('/v1/hello', (c) => c.json({ hello: name }));
  const server = await startApiServer(api, '127.0.0.1', 0, {
    app: peerApp({ pairs, cluster: async () => ({ id: `id-${name}`, name }) }),
    keyOf: (identity) => pairs.keyOf(identity),
  });
  url = server.url;
  return { store, pairs, server };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'ferry-pairs-'));
  a = await side('alpha');
  b = await side('beta');
});

afterAll(async () => {
  for (const s of [a, b]) {
    await s?.pairs.close();
    await s?.server.close();
  }
  await rm(dir, { recursive: true, force: true });
});

describe('cluster pairs', () => {
  it('serve the API and the peer link on one port; the link answers only a key it knows', async () => {
    expect(await (await fetch(`${b.server.url}/v1/hello`)).json()).toEqual({ hello: 'beta' });
    // Plain HTTP never reaches the peer routes.
    expect((await fetch(`${b.server.url}/peer/v1/ping`)).status).toBe(404);
    const stranger = new PeerClient(b.server.url, 'p.nobody', Buffer.alloc(32, 7), 'a stranger');
    await expect(stranger.call('GET', '/peer/v1/ping')).rejects.toSatisfy(
      (err: unknown) => isFerryError(err, 'UNAVAILABLE') && /refused this cluster's key/.test((err as Error).message),
    );
    stranger.close();
  });

  it('each new connection proves its key again (no TLS session resumption, which would prove none)', async () => {
    const { token } = await b.pairs.issueToken(600);
    const made = await a.pairs.create({ name: 'resume', remote_url: b.server.url, token });
    const link = new PeerClient(b.server.url, `p.${made.id}`, a.pairs.keyOf(`p.${made.id}`) as Buffer, 'resume');
    for (let round = 0; round < 3; round++) {
      const answers = await Promise.all([1, 2, 3].map(() => link.call<{ cluster_id: string }>('GET', '/peer/v1/ping')));
      expect(answers.map((x) => x.cluster_id)).toEqual(['id-beta', 'id-beta', 'id-beta']);
      // Its connections end (as idle ones do): the next calls open new ones.
      link.close();
    }
    await a.pairs.delete('resume');
  });

  it('pair with a token: both sides record it, the link works both ways, the token makes no second pair', async () => {
    const { token } = await b.pairs.issueToken(600);
    const made = await a.pairs.create({ name: 'dc2', remote_url: b.server.url, token });
    expect([made.remote_cluster_id, made.remote_cluster_name, made.initiated]).toEqual(['id-beta', 'beta', true]);
    const there = await b.pairs.pairs();
    expect(there.map((p) => [p.id, p.name, p.remote_url, p.initiated])).toEqual([
      [made.id, 'alpha', a.server.url, false],
    ]);
    expect((await a.pairs.status(made)).status).toBe('Ready');
    expect((await b.pairs.status(there[0] as (typeof there)[number])).status).toBe('Ready');

    await expect(a.pairs.create({ name: 'dc2-again', remote_url: b.server.url, token })).rejects.toSatisfy(
      (err: unknown) => isFerryError(err, 'PERMISSION_DENIED') && /used already/.test((err as Error).message),
    );
    await expect(a.pairs.create({ name: 'dc2', remote_url: b.server.url, token })).rejects.toSatisfy((err: unknown) =>
      isFerryError(err, 'ALREADY_EXISTS'),
    );
    expect((await a.pairs.pairs()).map((p) => p.name)).toEqual(['dc2']);
  });

  it('refuses bad input, expired tokens and a cluster pairing with itself, recording nothing', async () => {
    await expect(a.pairs.create({ name: 'x', remote_url: b.server.url, token: 'nope' })).rejects.toSatisfy(
      (err: unknown) => isFerryError(err, 'INVALID_ARGUMENT'),
    );
    await expect(
      a.pairs.create({ name: 'bad name!', remote_url: b.server.url, token: (await b.pairs.issueToken()).token }),
    ).rejects.toSatisfy((err: unknown) => isFerryError(err, 'INVALID_ARGUMENT'));
    await expect(a.pairs.issueToken(5)).rejects.toSatisfy((err: unknown) => isFerryError(err, 'INVALID_ARGUMENT'));

    const { token } = await b.pairs.issueToken();
    const id = token.split('.')[1] as string;
    const record = (await b.store.get<TokenRecord>(PAIR_TOKENS_PREFIX + id)) as TokenRecord;
    // Expired in the record (the key stays loaded until the next reload): the accept refuses it.
    await b.store.put(PAIR_TOKENS_PREFIX + id, { ...record, expires: new Date(Date.now() - 1000).toISOString() });
    await expect(a.pairs.create({ name: 'late', remote_url: b.server.url, token })).rejects.toSatisfy(
      (err: unknown) => isFerryError(err, 'PERMISSION_DENIED') || isFerryError(err, 'UNAVAILABLE'),
    );

    const own = await a.pairs.issueToken();
    await expect(a.pairs.create({ name: 'self', remote_url: a.server.url, token: own.token })).rejects.toSatisfy(
      (err: unknown) => isFerryError(err, 'FAILED_PRECONDITION') && /itself/.test((err as Error).message),
    );
    expect((await a.pairs.pairs()).map((p) => p.name)).toEqual(['dc2']);
    expect((await b.pairs.pairs()).map((p) => p.name)).toEqual(['alpha']);
  });

  it('is Degraded when the other cluster cannot reach this one back, and says so', async () => {
    const { token } = await b.pairs.issueToken(600);
    // This side tells the other a URL where nothing listens.
    const made = await a.pairs.create({
      name: 'one-way',
      remote_url: b.server.url,
      token,
      local_url: 'http://127.0.0.1:9',
    });
    const status = await a.pairs.status(made);
    expect(status.status).toBe('Degraded');
    expect(status.reason).toMatch(/cannot reach this one/);
    const there = (await b.pairs.pairs()).find((p) => p.id === made.id);
    expect((await b.pairs.status(there as NonNullable<typeof there>)).status).toBe('Error');
    await a.pairs.delete('one-way');
  });

  it('delete removes the pair on both sides; its key opens no link afterwards', async () => {
    const pair = await a.pairs.pair('dc2');
    const link = new PeerClient(b.server.url, `p.${pair.id}`, a.pairs.keyOf(`p.${pair.id}`) as Buffer, 'old pair');
    expect(await a.pairs.delete('dc2')).toEqual({ remote_deleted: true });
    expect(await a.pairs.pairs()).toEqual([]);
    expect(await b.pairs.pairs()).toEqual([]);
    await expect(link.call('GET', '/peer/v1/ping')).rejects.toSatisfy((err: unknown) =>
      isFerryError(err, 'UNAVAILABLE'),
    );
    link.close();
  });
});
