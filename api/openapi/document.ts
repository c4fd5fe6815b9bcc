/**
 * Generates the OpenAPI 3.1 document from the route registry: every request schema goes through zod 4's
 * `z.toJSONSchema` (input side: what a client sends, before transforms), so the document and the validation cannot
 * disagree. OpenAPI 3.1 schemas are JSON Schema 2020-12, which is what zod emits.
 */
import { z } from 'zod';
import { ERROR_CODES } from '../../common/index.js';
import { FERRY_VERSION } from '../version.js';
import { API_OPERATIONS, type ApiOperation } from './registry.js';

/** A JSON Schema object as the document holds it. */
export type JsonSchema = Record<string, unknown>;

/** The parts of an OpenAPI 3.1 document this generator writes. */
export interface OpenApiDocument {
  openapi: '3.1.0';
  info: { title: string; version: string; description: string };
  servers: { url: string }[];
  tags: { name: string }[];
  paths: Record<string, Record<string, OpenApiOperation>>;
  components: { schemas: Record<string, JsonSchema>; responses: Record<string, unknown> };
}

/** One operation object. */
export interface OpenApiOperation {
  operationId: string;
  summary: string;
  description?: string;
  tags: string[];
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
  '404': 'NOT_FOUND: the named resource (or route) does not exist.',
  '409': 'ALREADY_EXISTS.',
  '412': 'FAILED_PRECONDITION: the resource is in the wrong state.',
  '413': 'The request body is over the size limit (`field` is `body`).',
  '429': 'RESOURCE_EXHAUSTED: a quota is reached.',
  '500': 'INTERNAL or DATA_CORRUPTION; the details are in the node log.',
  '503': 'UNAVAILABLE: a backend (object store, key provider) cannot be reached, or this server does not serve it.',
};

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
  for (const status of Object.keys(ERROR_RESPONSES)) {
    if ((status === '400' && !validates) || (status === '413' && op.body === undefined)) continue;
    responses[status] = errorRef(status);
  }
  return {
    operationId: op.operationId,
    summary: op.summary,
    ...(op.rpc !== undefined && { description: `OpenStorage SDK: ${op.rpc}.` }),
    tags: [op.tag],
    ...(parameters.length > 0 && { parameters }),
    ...(op.body !== undefined && {
      requestBody: { required: true, content: { 'application/json': { schema: toJsonSchema(op.body) } } },
    }),
    responses,
  };
}

/** Builds the document for `operations` (default: the whole API). */
export function buildOpenApiDocument(operations: readonly ApiOperation[] = API_OPERATIONS): OpenApiDocument {
  const paths: OpenApiDocument['paths'] = {};
  const tags: string[] = [];
  for (const op of operations) {
    const item = paths[op.path] ?? {};
    if (item[op.method] !== undefined) throw new Error(`the registry lists ${op.method} ${op.path} twice`);
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
    paths,
    components: { schemas: { Error: toJsonSchema(errorBodySchema) }, responses },
  };
}
