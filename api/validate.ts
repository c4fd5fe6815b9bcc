/**
 * Runs the zod schemas over request bodies, queries and path parameters. Every failure becomes an INVALID_ARGUMENT
 * FerryError naming the field as a dotted path (`spec.size`, `labels.team`), so the client knows what to fix.
 */
import type { Context } from 'hono';
import type { z } from 'zod';
import { FerryError } from '../common/index.js';

/** Converts the first zod issue into INVALID_ARGUMENT; `root` names the whole value (e.g. `body`, `volume_id`). */
function toInvalidArgument(error: z.ZodError, root: string, prefix: string): FerryError {
  const issue = error.issues[0];
  if (issue === undefined) return new FerryError('INVALID_ARGUMENT', `${root}: invalid`, { field: root });
  const path = issue.path.map(String);
  let message = issue.message;
  if (issue.code === 'unrecognized_keys') {
    path.push(issue.keys[0] ?? '');
    message = 'unknown field';
  }
  const joined = path.join('.');
  const field = joined === '' ? root : `${prefix}${joined}`;
  return new FerryError('INVALID_ARGUMENT', `${field}: ${message}`, { field });
}

/**
 * Validates `data`. `root` is the field reported when the value as a whole is wrong; `prefix` is put before the
 * paths of nested fields (empty for bodies, so fields read `spec.size`).
 */
export function parseWith<S extends z.ZodType>(schema: S, data: unknown, root: string, prefix = ''): z.output<S> {
  const result = schema.safeParse(data);
  if (!result.success) throw toInvalidArgument(result.error, root, prefix);
  return result.data;
}

/** Reads the request body as JSON and validates it; bad JSON and an empty body are INVALID_ARGUMENT on `body`. */
export async function readJsonBody<S extends z.ZodType>(c: Context, schema: S): Promise<z.output<S>> {
  const text = await c.req.text();
  if (text.trim() === '')
    throw new FerryError('INVALID_ARGUMENT', 'body: a JSON object is required', { field: 'body' });
  let data: unknown;
  let protoKey = false;
  try {
    data = JSON.parse(text, (key, value: unknown) => {
      if (key === '__proto__') protoKey = true;
      return value;
    });
  } catch (err: unknown) {
    const detail = err instanceof Error ? err.message : 'parse error';
    throw new FerryError('INVALID_ARGUMENT', `body: not valid JSON (${detail})`, { field: 'body', cause: err });
  }
  // zod drops a "__proto__" key without a word (it cannot be assigned as data): refuse it instead.
  if (protoKey) throw new FerryError('INVALID_ARGUMENT', 'body: no field may be named "__proto__"', { field: 'body' });
  return parseWith(schema, data, 'body');
}

/** Validates the query string (one value per name). */
export function readQuery<S extends z.ZodType>(c: Context, schema: S): z.output<S> {
  return parseWith(schema, c.req.query(), 'query');
}

/** Validates one path parameter; errors name the parameter (`volume_id`). */
export function readParam<S extends z.ZodType>(c: Context, name: string, schema: S): z.output<S> {
  return parseWith(schema, c.req.param(name), name);
}
