/** OpenStorageIdentity Version: GET /v1/identities/version (SdkIdentityVersionResponse). */
import { Hono } from 'hono';
import { FERRY_VERSION, OPENSTORAGE_SDK_VERSION } from '../version.js';

/** Routes of the identity rpcs, to mount under `/v1`. */
export function identityRoutes(): Hono {
  const routes = new Hono();
  routes.get('/identities/version', (c) => {
    const { major, minor, patch } = OPENSTORAGE_SDK_VERSION;
    return c.json({
      sdk_version: { major, minor, patch, version: `${major}.${minor}.${patch}` },
      version: { driver: 'ferry', version: FERRY_VERSION, details: { node: process.version } },
    });
  });
  return routes;
}
