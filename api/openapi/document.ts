/**
 * Assembles the OpenAPI 3.1 document from the operations' definitions (api/operation.ts; the list is
 * api/operations.ts): what is said of the API as a whole (info, security scheme, error responses, tags) is here; each
 * operation's method, path and schemas come from its definition, the same objects its route validates with. Every
 * schema goes through zod 4's `z.toJSONSchema` (input side: what a client sends, before transforms). OpenAPI 3.1
 * schemas are JSON Schema 2020-12, which is what zod emits.
 */
import { z } from 'zod';
import { ERROR_CODES } from '../../common/index.js';
import { PUBLIC_PATHS } from '../auth/index.js';
import type { ApiOperation } from '../operation.js';
import { FERRY_VERSION } from '../version.js';

/** A JSON Schema object as the document holds it. */
export type JsonSchema = Record<string, unknown>;

/** The parts of an OpenAPI 3.1 document this generator writes. */
export interface OpenApiDocument {
  openapi: '3.1.0';
  info: { title: string; version: string; description: string };
  servers: { url: string }[];
  tags: { name: string }[];
  /** Every operation needs a bearer token unless it says otherwise (`security: []`). */
  security: Record<string, string[]>[];
  paths: Record<string, Record<string, OpenApiOperation>>;
  components: {
    schemas: Record<string, JsonSchema>;
    responses: Record<string, unknown>;
    securitySchemes: Record<string, Record<string, string>>;
  };
}

/** One operation object. */
export interface OpenApiOperation {
  operationId: string;
  summary: string;
  description?: string;
  tags: string[];
  /** `[]` on operations served without a token. */
  security?: Record<string, string[]>[];
  parameters?: OpenApiParameter[];
  requestBody?: { required: true; content: { 'application/json': { schema: JsonSchema } } };
  responses: Record<string, unknown>;
}

/** One parameter object. */
export interface OpenApiParameter {
  name: string;
  in: 'path' | 'query';
  required: boolean;
  schema: JsonSchema;
}

/** The body of every error response (mirrors api/errors.ts `ErrorBody`). */
export const errorBodySchema = z.strictObject({
  code: z.enum(ERROR_CODES),
  message: z.string(),
  field: z.string().optional(),
});

/** JSON Schema of a zod schema, input side, without the `$schema` line. */
export function toJsonSchema(schema: z.ZodType): JsonSchema {
  const { $schema: _drop, ...rest } = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' });
  return rest;
}

const ERROR_RESPONSES: Readonly<Record<string, string>> = {
  '400': 'INVALID_ARGUMENT: `field` names the request field at fault (a dotted path such as `spec.size`).',
  '401': 'UNAUTHENTICATED: no bearer token, or one that does not verify.',
  '403': "PERMISSION_DENIED: the caller's roles or the resource's ownership do not allow this.",
  '404': 'NOT_FOUND: the named resource (or route) does not exist.',
  '409': 'ALREADY_EXISTS.',
  '412': 'FAILED_PRECONDITION: the resource is in the wrong state.',
  '413': 'The request body is over the size limit (`field` is `body`).',
  '429': 'RESOURCE_EXHAUSTED: a quota is reached.',
  '500': 'INTERNAL or DATA_CORRUPTION; the details are in the node log.',
  '503': 'UNAVAILABLE: a backend (object store, key provider) cannot be reached, or this server does not serve it.',
};

/** Whether `path` answers without a token: outside `/v1` (probes, metrics), or one of the public `/v1` paths. */
function isPublic(path: string): boolean {
  return !path.startsWith('/v1/') || PUBLIC_PATHS.has(path);
}

function errorRef(status: string): { $ref: string } {
  return { $ref: `#/components/responses/Error${status}` };
}

function operationObject(op: ApiOperation): OpenApiOperation {
  const parameters: OpenApiParameter[] = [];
  for (const [name, schema] of Object.entries(op.params ?? {})) {
    parameters.push({ name, in: 'path', required: true, schema: toJsonSchema(schema) });
  }
  if (op.query !== undefined) {
    const query = toJsonSchema(op.query);
    const properties = (query.properties ?? {}) as Record<string, JsonSchema>;
    const required = new Set((query.required ?? []) as string[]);
    for (const [name, schema] of Object.entries(properties)) {
      parameters.push({ name, in: 'query', required: required.has(name), schema });
    }
  }
  const ok =
    op.produces !== undefined && op.produces !== 'application/json'
      ? { description: 'OK', content: { [op.produces]: { schema: { type: 'string' } } } }
      : {
          description: 'OK',
          content: { 'application/json': { schema: op.response ? toJsonSchema(op.response) : { type: 'object' } } },
        };
  const responses: Record<string, unknown> = { '200': ok };
  const validates = parameters.length > 0 || op.body !== undefined;
  const open = isPublic(op.path);
  for (const status of Object.keys(ERROR_RESPONSES)) {
    if ((status === '400' && !validates) || (status === '413' && op.body === undefined)) continue;
    if ((status === '401' || status === '403') && open) continue;
    responses[status] = errorRef(status);
  }
  return {
    operationId: op.operationId,
    summary: op.summary,
    ...(op.rpc !== undefined && { description: `OpenStorage SDK: ${op.rpc}.` }),
    tags: [op.tag],
    ...(open && { security: [] }),
    ...(parameters.length > 0 && { parameters }),
    ...(op.body !== undefined && {
      requestBody: { required: true, content: { 'application/json': { schema: toJsonSchema(op.body) } } },
    }),
    responses,
  };
}

/** Builds the document of `operations` (the whole API: `API_OPERATIONS` of api/operations.ts). */
export function buildOpenApiDocument(operations: readonly ApiOperation[]): OpenApiDocument {
  const paths: OpenApiDocument['paths'] = {};
  const tags: string[] = [];
  for (const op of operations) {
    const item = paths[op.path] ?? {};
    if (item[op.method] !== undefined)
      throw new Error(`${op.method} ${op.path} is defined twice (${item[op.method]?.operationId}, ${op.operationId})`);
    item[op.method] = operationObject(op);
    paths[op.path] = item;
    if (!tags.includes(op.tag)) tags.push(op.tag);
  }
  const responses: Record<string, unknown> = {};
  for (const [status, description] of Object.entries(ERROR_RESPONSES)) {
    responses[`Error${status}`] = {
      description,
      content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Ferry API',
      version: FERRY_VERSION,
      description:
        'Block storage for containers with cloud backup built in. Routes, methods and snake_case fields follow the ' +
        'OpenStorage SDK REST gateway where it defines an operation; Ferry additions use the same style. Every ' +
        'request is validated against the schemas shown here: unknown fields, wrong types and bad JSON get 400 with ' +
        'the field named.',
    },
    servers: [{ url: '/' }],
    tags: tags.map((name) => ({ name })),
    security: [{ bearer: [] }],
    paths,
    components: {
      schemas: { Error: toJsonSchema(errorBodySchema) },
      responses,
      securitySchemes: {
        bearer: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description:
            'A token from `ferry auth token` (HS256, signed with the admin secret) or from the OIDC issuer the nodes trust (RS256). Not needed when the node runs with authentication off.',
        },
      },
    },
  };
}
