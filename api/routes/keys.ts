/**
 * Ferry's key routes (an addition under /v1): List GET /v1/keys (KEKs of the local keyring with their versions, and
 * the node's key providers), Create POST /v1/keys {kek}, Rotate POST /v1/keys/rotate {kek, key_provider?,
 * credential_id?} (rotates the KEK and rewraps the master secret of every repository under it), Destroy POST
 * /v1/keys/destroy {kek, force?, dry_run?} (crypto-shredding of a local KEK: backups and encrypted volumes under it
 * become unreadable; volumes are refused without force; dry_run only lists what would be lost).
 */
import { Hono } from 'hono';
import type { KeyService } from '../../cloudsnap/index.js';
import { FerryError } from '../../common/index.js';
import type { ResourceAccess } from '../auth/access.js';
import { addOperations, operationsWith } from '../operation.js';
import { createKeySchema, destroyKeySchema, rotateKeySchema } from '../schemas/index.js';

const define = operationsWith<KeyService>();

/** The key operations. */
export const keyOperations = [
  define({
    method: 'get',
    path: '/v1/keys',
    operationId: 'keyList',
    tag: 'Keys',
    summary: "KEKs of the local keyring and the node's key providers.",
    handler: async (c, _input, keys) => c.json(await keys.list()),
  }),
  define({
    method: 'post',
    path: '/v1/keys',
    operationId: 'keyCreate',
    tag: 'Keys',
    summary: 'Creates a KEK in the local keyring.',
    body: createKeySchema,
    handler: async (c, { body }, keys) => c.json(await keys.create(body.kek)),
  }),
  define({
    method: 'post',
    path: '/v1/keys/rotate',
    operationId: 'keyRotate',
    tag: 'Keys',
    summary: 'Rotates a KEK and rewraps the master secret of every repository under it.',
    body: rotateKeySchema,
    handler: async (c, { body }, keys) => c.json(await keys.rotate(body, c.req.raw.signal)),
  }),
  define({
    method: 'post',
    path: '/v1/keys/destroy',
    operationId: 'keyDestroy',
    tag: 'Keys',
    summary: 'Destroys a local KEK: backups and encrypted volumes under it become unreadable (crypto-shredding).',
    body: destroyKeySchema,
    handler: async (c, { body }, keys) => c.json(await keys.destroy(body)),
  }),
];

/**
 * Routes of the key operations, to mount under `/v1`; without the service they answer UNAVAILABLE. For
 * `system.admin` only (checked here, before anything else, as well as by the authentication middleware).
 */
export function keyRoutes(keys: KeyService | undefined, access: ResourceAccess): Hono {
  const routes = new Hono();
  routes.use('/keys', async (c, next) => {
    access.requireAdmin(c);
    await next();
  });
  routes.use('/keys/*', async (c, next) => {
    access.requireAdmin(c);
    await next();
  });

  if (keys === undefined) {
    const unavailable = (): never => {
      throw new FerryError('UNAVAILABLE', 'this node serves no key operations; start it with `ferry node start`');
    };
    routes.all('/keys', unavailable);
    routes.all('/keys/*', unavailable);
    return routes;
  }
  return addOperations(routes, keyOperations, keys);
}
