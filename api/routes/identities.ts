/**
 * OpenStorageIdentity rpcs (libopenstorage/openstorage api/api.proto): Version GET /v1/identities/version
 * (SdkIdentityVersionResponse) and Capabilities GET /v1/identities/capabilities (SdkIdentityCapabilitiesResponse:
 * the services this server answers).
 */
import { Hono } from 'hono';
import { addOperations, operationsWith } from '../operation.js';
import { capabilitiesResponseSchema, type ServiceType, versionResponseSchema } from '../schemas/index.js';
import { FERRY_VERSION, OPENSTORAGE_SDK_VERSION } from '../version.js';

const define = operationsWith<readonly ServiceType[]>();

/** The identity rpcs; their handlers get the services the server answers. */
export const identityOperations = [
  define({
    method: 'get',
    path: '/v1/identities/version',
    operationId: 'identityVersion',
    tag: 'Identity',
    summary: "The OpenStorage SDK version this API follows and Ferry's own version.",
    rpc: 'OpenStorageIdentity.Version',
    response: versionResponseSchema,
    handler: (c) => {
      const { major, minor, patch } = OPENSTORAGE_SDK_VERSION;
      return c.json({
        sdk_version: { major, minor, patch, version: `${major}.${minor}.${patch}` },
        version: { driver: 'ferry', version: FERRY_VERSION, details: { node: process.version } },
      });
    },
  }),
  define({
    method: 'get',
    path: '/v1/identities/capabilities',
    operationId: 'identityCapabilities',
    tag: 'Identity',
    summary: 'The services this server answers.',
    rpc: 'OpenStorageIdentity.Capabilities',
    response: capabilitiesResponseSchema,
    handler: (c, _input, services) => c.json({ capabilities: services.map((type) => ({ service: { type } })) }),
  }),
];

/** Routes of the identity rpcs, to mount under `/v1`. Default services: identity and volumes only. */
export function identityRoutes(services: readonly ServiceType[] = ['IDENTITY', 'VOLUME']): Hono {
  return addOperations(new Hono(), identityOperations, services);
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
