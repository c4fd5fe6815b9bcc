/**
 * Forwarding between two real API servers on loopback: two nodes (each an engine, a cluster directory and an app)
 * share one cluster store. Node B's engine refuses operations on the volume node A holds with RunsElsewhere; B's API
 * sends the request once to A's API (its URL from A's node record) and answers with A's answer.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MiddlewareHandler } from 'hono';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FerryError } from '../common/index.js';
import { MemoryStore, openEngine, RunsElsewhere, type VolumeEngine } from '../node/index.js';
import { createApp } from './app.js';
import { StoreClusterDirectory } from './cluster-directory.js';
import { FORWARDED_BY_HEADER, FORWARDED_TO_HEADER, requireHeldHere } from './forward.js';
import { type RunningApiServer, startApiServer } from './server.js';

const MiB = 1024 * 1024;
const TOKEN = 'Bearer cluster-wide-token';

/** The authentication seam as a node has it, reduced to one shared token: the forwarded request must carry it. */
const requireToken: MiddlewareHandler = async (c, next) => {
  if (c.req.header('authorization') !== TOKEN) throw new FerryError('UNAUTHENTICATED', 'no or wrong token');
  await next();
};

interface TestNode {
  id: string;
  engine: VolumeEngine;
  directory: StoreClusterDirectory;
  server: RunningApiServer;
}

let base: string;
let store: MemoryStore;
let a: TestNode;
let b: TestNode;

async function startNode(name: string): Promise<TestNode> {
  const dataDir = join(base, name);
  await mkdir(dataDir);
  const directory = await StoreClusterDirectory.open({ dataDir, store });
  const engine = await openEngine({ dataDir, store, nodeId: directory.nodeId });
  const app = createApp({ engine, cluster: directory, authenticate: requireToken });
  const server = await startApiServer(app, '127.0.0.1', 0);
  await directory.announce(server.url);
  return { id: directory.nodeId, engine, directory, server };
}

async function stopNode(node: TestNode | undefined): Promise<void> {
  if (node === undefined) return;
  await node.server.close().catch(() => undefined);
  await node.directory.leave().catch(() => undefined);
  await node.engine.close();
}

beforeEach(async () => {
  base = await mkdtemp(join(tmpdir(), 'ferry-forward-'));
  store = new MemoryStore();
  a = await startNode('a');
  b = await startNode('b');
  await a.engine.createVolume({ name: 'va', size: 4 * MiB });
});

afterEach(async () => {
  await stopNode(a);
  await stopNode(b);
  await store.close();
  await rm(base, { recursive: true, force: true });
});

async function send(
  node: TestNode,
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: Record<string, unknown>; forwardedTo: string | null }> {
  const res = await fetch(`${node.server.url}${path}`, {
    method,
    headers: { authorization: TOKEN, ...(body !== undefined && { 'content-type': 'application/json' }), ...headers },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  return {
    status: res.status,
    body: (await res.json()) as Record<string, unknown>,
    forwardedTo: res.headers.get(FORWARDED_TO_HEADER),
  };
}

describe('forwarding a request to the node it runs on', () => {
  it("sends a snapshot of A's volume asked of B to A, with its body, and answers with A's answer", async () => {
    const res = await send(b, 'POST', '/v1/volumes/snapshots', { volume_id: 'va', name: 's1', labels: { k: 'v' } });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.forwardedTo).toBe(a.id);
    const snaps = await a.engine.listSnapshots('va');
    expect(snaps.map((s) => [s.id, s.name, s.labels])).toEqual([[res.body.snapshot_id, 's1', { k: 'v' }]]);
  });

  it('forwards a PUT with its body and the query of a DELETE', async () => {
    const put = await send(b, 'PUT', '/v1/volumes/va', { labels: { team: 'blue' } });
    expect([put.status, put.forwardedTo]).toEqual([200, a.id]);
    expect((await a.engine.inspectVolume('va')).labels).toEqual({ team: 'blue' });
    const del = await send(b, 'DELETE', '/v1/volumes/va?with_schedules=false');
    expect([del.status, del.forwardedTo]).toEqual([200, a.id]);
    expect((await a.engine.listVolumes()).map((v) => v.name)).toEqual([]);
  });

  it("returns A's refusal as A answered it (status and body)", async () => {
    // Only A, which holds the volume, decides a resize: a shrink is its INVALID_ARGUMENT, relayed as it answered.
    const res = await send(b, 'PUT', '/v1/volumes/va', { spec: { size: MiB } });
    expect(res.forwardedTo).toBe(a.id);
    expect([res.status, res.body.code]).toEqual([400, 'INVALID_ARGUMENT']);
    expect((await a.engine.inspectVolume('va')).size).toBe(4 * MiB);
  });

  it('passes the Authorization header on: without it A refuses', async () => {
    // B lets the request through (its own check passes), A sees a different token and refuses it.
    const appB = createApp({
      engine: b.engine,
      cluster: b.directory,
      authenticate: async (c, next) => {
        c.req.raw.headers.set('authorization', 'Bearer something-else');
        await next();
      },
    });
    const other = await startApiServer(appB, '127.0.0.1', 0);
    try {
      const res = await fetch(`${other.url}/v1/volumes/va`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ labels: { x: 'y' } }),
      });
      expect([res.status, res.headers.get(FORWARDED_TO_HEADER)]).toEqual([401, a.id]);
      expect((await a.engine.inspectVolume('va')).labels).toEqual({});
    } finally {
      await other.close();
    }
  });

  it('never forwards a request twice: one already forwarded answers FAILED_PRECONDITION naming the node', async () => {
    const res = await send(
      b,
      'POST',
      '/v1/volumes/snapshots',
      { volume_id: 'va', name: 's1' },
      {
        [FORWARDED_BY_HEADER]: 'some-node',
      },
    );
    expect([res.status, res.body.code, res.forwardedTo]).toEqual([412, 'FAILED_PRECONDITION', null]);
    expect(res.body.message).toContain(`node ${a.id}`);
    expect(await a.engine.listSnapshots('va')).toEqual([]);
  });

  it('answers UNAVAILABLE naming the node when it does not answer, or is offline', async () => {
    await a.server.close();
    const down = await send(b, 'POST', '/v1/volumes/snapshots', { volume_id: 'va', name: 's1' });
    expect([down.status, down.body.code]).toEqual([503, 'UNAVAILABLE']);
    expect(down.body.message).toContain(`node ${a.id}, which did not answer at ${a.server.url}`);
    await a.directory.leave();
    const gone = await send(b, 'POST', '/v1/volumes/snapshots', { volume_id: 'va', name: 's1' });
    expect([gone.status, gone.body.code]).toEqual([503, 'UNAVAILABLE']);
    expect(gone.body.message).toContain(`node ${a.id}, which is offline`);
    expect(await a.engine.listSnapshots('va')).toEqual([]);
  });

  it('answers here what this node can answer (no forwarding): reads of the catalog', async () => {
    const res = await send(b, 'GET', '/v1/volumes/inspect/va');
    expect([res.status, res.forwardedTo]).toEqual([200, null]);
    expect(res.body).toMatchObject({ volume: { replica_sets: [{ nodes: [a.id] }], replicas: [{ node_id: a.id }] } });
  });
});

describe('requireHeldHere (a backup job starts only on a node holding the volume)', () => {
  it('sends work on a volume held elsewhere to where it is attached, else to an in-sync replica', async () => {
    const onA = await b.engine.inspectVolume('va');
    expect(onA.held_here).toBe(false);
    const thrown = (() => {
      try {
        requireHeldHere(onA, 'a backup of volume va');
      } catch (err: unknown) {
        return err;
      }
      return undefined;
    })();
    expect(thrown).toBeInstanceOf(RunsElsewhere);
    expect(thrown).toMatchObject({ nodeId: a.id, code: 'FAILED_PRECONDITION' });
    const replicas = [
      { node_id: 'filling', state: 'filling' as const },
      { node_id: 'synced', state: 'in-sync' as const },
    ];
    expect(() => requireHeldHere({ ...onA, replicas }, 'x')).toThrow(/node synced does/);
    expect(() => requireHeldHere({ ...onA, replicas, attached_node: 'coord' }, 'x')).toThrow(/node coord does/);
    const here = await a.engine.inspectVolume('va');
    expect(() => requireHeldHere(here, 'x')).not.toThrow();
  });
});
