/**
 * One definition per API operation: its method, path, schemas, what the reference says of it, and its handler.
 * `addOperations` registers definitions on a Hono router, validating the path parameters, then the query, then the
 * JSON body with the definition's schemas before the handler runs (each failure an INVALID_ARGUMENT FerryError naming
 * the field, see validate.ts; an optional `lookup` runs between the query and the body); the OpenAPI document (api/openapi/document.ts) is built from the same definitions
 * (`API_OPERATIONS`, api/operations.ts). Nothing else states a route's method, path or schemas.
 */
import type { Context, Hono } from 'hono';
import type { z } from 'zod';
import { readJsonBody, readParam, readQuery } from './validate.js';

/** HTTP methods the API uses, lower case as OpenAPI writes them. */
export type HttpMethod = 'get' | 'post' | 'put' | 'delete';

/** Path parameters by name, each with its schema. */
export type ParamSchemas = Readonly<Record<string, z.ZodType>>;

/** What the document (and the fuzz test) sees of an operation: everything but the handler. */
export interface ApiOperation {
  method: HttpMethod;
  /** Full OpenAPI path, parameters in braces: `/v1/volumes/inspect/{volume_id}`. */
  path: string;
  /** Unique, camelCase. */
  operationId: string;
  /** Group in the document and the reference page. */
  tag: string;
  summary: string;
  /** The OpenStorage SDK rpc this follows (`OpenStorageVolume.Create`); absent for Ferry's additions. */
  rpc?: string;
  /** Path parameters and their schemas. */
  params?: ParamSchemas;
  /** The query schema (an object of strings). Unknown names are refused when the schema is strict. */
  query?: z.ZodObject;
  /** The JSON body schema; without it the body is not read. */
  body?: z.ZodType;
  /** The 200 response's schema, where one is written; otherwise the document says only "a JSON object". */
  response?: z.ZodType;
  /** Content type of the 200 response. Default application/json. */
  produces?: string;
}

/** The validated path parameters and query, what `lookup` receives. */
export interface OperationTarget<P extends ParamSchemas, Q> {
  params: { [K in keyof P]: z.output<P[K]> };
  query: Q extends z.ZodType ? z.output<Q> : undefined;
}

/** The validated request a handler receives, with what `lookup` found. */
export interface OperationInput<P extends ParamSchemas, Q, B, L> extends OperationTarget<P, Q> {
  body: B extends z.ZodType ? z.output<B> : undefined;
  found: L;
}

/** An operation as written: the document's part plus the handler, which gets the validated input and `deps`. */
export interface OperationDefinition<
  D,
  P extends ParamSchemas,
  Q extends z.ZodObject | undefined,
  B extends z.ZodType | undefined,
  L,
> extends Omit<ApiOperation, 'params' | 'query' | 'body'> {
  params?: P;
  query?: Q;
  body?: B;
  /**
   * Finds what the request names before the body is read, for an operation that judges the target first (a PUT on
   * a snapshot's ownership is refused on `id` whatever the body says). Its result is the handler's `input.found`.
   */
  lookup?: (c: Context, input: OperationTarget<P, Q>, deps: D) => Promise<L>;
  handler: (c: Context, input: OperationInput<P, Q, B, L>, deps: D) => Response | Promise<Response>;
}

/** A defined operation: the document's part, and `run` (validate, then call the handler). */
export interface Operation<D> extends ApiOperation {
  /** Validates the parameters and the query, runs `lookup`, validates the body, then runs the handler. */
  run: (c: Context, deps: D) => Promise<Response>;
}

/**
 * A `define` for the operations of one router, whose handlers all receive `D` (the services they work on):
 * `const define = operationsWith<VolumeDeps>(); export const volumeCreate = define({ method: 'post', ... })`.
 */
export function operationsWith<D>() {
  return function define<
    P extends ParamSchemas = Record<never, never>,
    Q extends z.ZodObject | undefined = undefined,
    B extends z.ZodType | undefined = undefined,
    L = undefined,
  >(definition: OperationDefinition<D, P, Q, B, L>): Operation<D> {
    const { handler, lookup, ...described } = definition;
    return {
      ...described,
      async run(c: Context, deps: D): Promise<Response> {
        const params: Record<string, unknown> = {};
        for (const [name, schema] of Object.entries(definition.params ?? {})) params[name] = readParam(c, name, schema);
        const query = definition.query === undefined ? undefined : readQuery(c, definition.query);
        const target = { params, query } as OperationTarget<P, Q>;
        const found = lookup === undefined ? undefined : await lookup(c, target, deps);
        const body = definition.body === undefined ? undefined : await readJsonBody(c, definition.body);
        return handler(c, { ...target, body, found } as OperationInput<P, Q, B, L>, deps);
      },
    };
  };
}

/** `/v1/volumes/{volume_id}` under `/v1` -> `/volumes/:volume_id` (the path on a router mounted at `mountedAt`). */
export function routerPath(path: string, mountedAt: string): string {
  const prefix = mountedAt === '/' ? '' : mountedAt;
  if (!path.startsWith(`${prefix}/`)) throw new Error(`operation path ${path} is not under ${mountedAt}`);
  return path.slice(prefix.length).replace(/\{([^}]+)\}/g, ':$1');
}

/**
 * Registers `operations` on `routes` (a router to be mounted at `mountedAt`, default `/v1`), each handler given `deps`.
 * Middleware the router already has runs first, in the order it was added.
 */
export function addOperations<D>(
  routes: Hono,
  operations: readonly Operation<D>[],
  deps: NoInfer<D>,
  mountedAt = '/v1',
): Hono {
  for (const op of operations) {
    routes.on(op.method.toUpperCase(), routerPath(op.path, mountedAt), (c) => op.run(c, deps));
  }
  return routes;
}
