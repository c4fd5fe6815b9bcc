/**
 * What a paired cluster may ask of this one, over the link (api/pairs/channel.ts): routes under `/peer/v1`, answered
 * only on TLS-PSK connections (the API port hands them here), each checked against the identity the connection
 * proved: a token's identity may only make its pair; a pair's identity may do the rest.
 */
import type { IncomingMessage } from 'node:http';
import { type Context, Hono } from 'hono';
import { FerryError } from '../../common/index.js';
import { errorResponse, routeNotFound } from '../errors.js';
import type { MigrationReceiver, ReceiveRequest } from '../migrate/receiver.js';
import type { MigrationService } from '../migrate/service.js';
import { peerOf } from './peer-identity.js';
import type { AcceptRequest, PairService } from './service.js';

/** The pair id the connection proved (`p.<id>`) while the pair still exists here, else PERMISSION_DENIED. */
function pairOf(c: Context, pairs: PairService): string {
  const identity = peerOf(c);
  if (identity?.startsWith('p.') !== true || pairs.keyOf(identity) === undefined) {
    throw new FerryError('PERMISSION_DENIED', 'only a paired cluster may call this (the pair was deleted here?)');
  }
  return identity.slice(2);
}

async function json<T>(c: Context): Promise<T> {
  try {
    return (await c.req.json()) as T;
  } catch (err: unknown) {
    throw new FerryError('INVALID_ARGUMENT', 'the body is not JSON', { cause: err });
  }
}

function requireString(value: unknown, field: string): string {
  if (typeof value !== 'string' || value === '')
    throw new FerryError('INVALID_ARGUMENT', `${field}: a string`, { field });
  return value;
}

/** What the peer routes answer from. */
export interface PeerAppOptions {
  pairs: PairService;
  /** This cluster's id and name. */
  cluster: () => Promise<{ id: string; name: string }>;
  /** Fills volumes migrated here; absent: this node takes no migrations (UNAVAILABLE). */
  receiver?: MigrationReceiver;
  /** This cluster's migrations to others (a destination asks how one ended). */
  migrations?: MigrationService;
}

/** The peer app. */
export function peerApp(options: PeerAppOptions): Hono {
  const { pairs, receiver, migrations } = options;
  const app = new Hono();
  app.onError((err, c) => errorResponse(c, err));
  app.notFound(routeNotFound);
  const receiving = (): MigrationReceiver => {
    if (receiver === undefined) throw new FerryError('UNAVAILABLE', 'this node takes no migrations (it has no engine)');
    return receiver;
  };

  app.post('/peer/v1/pairs', async (c) => {
    const identity = peerOf(c);
    if (identity?.startsWith('t.') !== true) throw new FerryError('PERMISSION_DENIED', 'a pair is made with a token');
    const body = await json<Partial<AcceptRequest>>(c);
    const request: AcceptRequest = {
      pair_id: requireString(body.pair_id, 'pair_id'),
      cluster_id: requireString(body.cluster_id, 'cluster_id'),
      cluster_name: requireString(body.cluster_name, 'cluster_name'),
      endpoint: requireString(body.endpoint, 'endpoint'),
    };
    return c.json(await pairs.accept(identity.slice(2), request));
  });
  app.get('/peer/v1/ping', async (c) => {
    const pairId = pairOf(c, pairs);
    const { id, name } = await options.cluster();
    // `back=1`: also say whether this cluster reaches the caller (the other direction of the pair).
    let back: string | undefined;
    if (c.req.query('back') === '1') back = await pairs.reachBack(pairId);
    return c.json({
      cluster_id: id,
      cluster_name: name,
      time: new Date().toISOString(),
      ...(back !== undefined && { back }),
    });
  });
  app.delete('/peer/v1/pairs', async (c) => {
    await pairs.forget(pairOf(c, pairs));
    return c.json({});
  });

  app.get('/peer/v1/migrations/:mid', async (c) => {
    const pair = pairOf(c, pairs);
    if (migrations === undefined) throw new FerryError('UNAVAILABLE', 'this node runs no migrations');
    return c.json(await migrations.peerStatus(pair, c.req.param('mid')));
  });
  app.post('/peer/v1/migrations/volumes', async (c) => {
    const pair = pairOf(c, pairs);
    const body = await json<Partial<ReceiveRequest>>(c);
    if (typeof body.size !== 'number' || typeof body.ha_level !== 'number') {
      throw new FerryError('INVALID_ARGUMENT', 'size and ha_level: numbers');
    }
    const request: ReceiveRequest = {
      migration_id: requireString(body.migration_id, 'migration_id'),
      name: requireString(body.name, 'name'),
      size: body.size,
      ha_level: body.ha_level,
      labels: typeof body.labels === 'object' && body.labels !== null ? body.labels : {},
      encrypted: body.encrypted === true,
    };
    return c.json(await receiving().create(pair, request));
  });
  app.put('/peer/v1/migrations/:mid/volumes/:vid/data', async (c) => {
    pairOf(c, pairs);
    const incoming = (c.env as { incoming: IncomingMessage }).incoming;
    return c.json(await receiving().write(c.req.param('mid'), c.req.param('vid'), incoming));
  });
  app.post('/peer/v1/migrations/:mid/volumes/:vid/complete', async (c) => {
    pairOf(c, pairs);
    return c.json(await receiving().complete(c.req.param('mid'), c.req.param('vid')));
  });
  app.post('/peer/v1/migrations/:mid/volumes/:vid/snapshots', async (c) => {
    pairOf(c, pairs);
    const body = await json<{ name?: unknown; labels?: unknown }>(c);
    const labels =
      typeof body.labels === 'object' && body.labels !== null ? (body.labels as Record<string, string>) : {};
    return c.json(
      await receiving().snapshot(c.req.param('mid'), c.req.param('vid'), requireString(body.name, 'name'), labels),
    );
  });
  app.get('/peer/v1/migrations/:mid/volumes/:vid', async (c) => {
    pairOf(c, pairs);
    return c.json(await receiving().state(c.req.param('mid'), c.req.param('vid')));
  });
  app.delete('/peer/v1/migrations/:mid/volumes/:vid', async (c) => {
    pairOf(c, pairs);
    return c.json(await receiving().abandon(c.req.param('mid'), c.req.param('vid')));
  });
  return app;
}
