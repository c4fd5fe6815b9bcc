/**
 * OpenStorageIdentity rpcs (libopenstorage/openstorage api/api.proto): Version GET /v1/identities/version
 * (SdkIdentityVersionResponse) and Capabilities GET /v1/identities/capabilities (SdkIdentityCapabilitiesResponse:
 * the services this server answers).
 */
import { Hono } from 'hono';
import type { ServiceType } from '../schemas/index.js';
import { FERRY_VERSION, OPENSTORAGE_SDK_VERSION } from '../version.js';

/** The services a server answers, in the order capabilities lists them. Default: identity and volumes only. */
export function identityRoutes(services: readonly ServiceType[] = ['IDENTITY', 'VOLUME']): Hono {
  const routes = new Hono();
  routes.get('/identities/version', (c) => {
    const { major, minor, patch } = OPENSTORAGE_SDK_VERSION;
    return c.json({
      sdk_version: { major, minor, patch, version: `${major}.${minor}.${patch}` },
      version: { driver: 'ferry', version: FERRY_VERSION, details: { node: process.version } },
    });
  });
  routes.get('/identities/capabilities', (c) =>
    c.json({ capabilities: services.map((type) => ({ service: { type } })) }),
  );
  return routes;
}

/** The services a server with these parts answers (what capabilities lists). */
export function servedServices(parts: {
  credentials?: unknown;
  cloudBackups?: unknown;
  cluster?: unknown;
  schedules?: unknown;
}): ServiceType[] {
  const services: ServiceType[] = ['IDENTITY', 'VOLUME'];
  if (parts.cluster !== undefined) services.push('CLUSTER', 'NODE');
  if (parts.credentials !== undefined) services.push('CREDENTIALS');
  if (parts.cloudBackups !== undefined) services.push('CLOUD_BACKUP');
  if (parts.schedules !== undefined) services.push('SCHEDULE_POLICY');
  return services;
}
