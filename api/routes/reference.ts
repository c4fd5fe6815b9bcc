/**
 * The API's own reference: `GET /v1/openapi.json` (the OpenAPI document) and `GET /v1/docs` (the same as one HTML
 * page), both built from the operations' definitions (api/operations.ts) on first use. Served before authentication:
 * they describe the API, not data.
 */
import { Hono } from 'hono';
import { buildOpenApiDocument, renderReferenceHtml } from '../openapi/index.js';
import { type ApiOperation, addOperations, operationsWith } from '../operation.js';

/** The document as served: its JSON text and its page. */
interface Reference {
  json: string;
  html: string;
}

const define = operationsWith<() => Reference>();

/** The reference's operations; their handlers get the (lazily built) reference. */
export const referenceOperations = [
  define({
    method: 'get',
    path: '/v1/openapi.json',
    operationId: 'openApiDocument',
    tag: 'Identity',
    summary: 'This document (OpenAPI 3.1), generated from the schemas that validate requests.',
    handler: (c, _input, reference) =>
      c.body(reference().json, 200, { 'content-type': 'application/json; charset=utf-8' }),
  }),
  define({
    method: 'get',
    path: '/v1/docs',
    operationId: 'apiReference',
    tag: 'Identity',
    summary: 'The API reference as one self-contained HTML page.',
    produces: 'text/html',
    handler: (c, _input, reference) =>
      c.html(reference().html, 200, {
        // The page loads nothing: no script, no remote style, no images.
        'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'",
      }),
  }),
];

/** Routes of the reference of `operations`, to mount under `/v1`. */
export function referenceRoutes(operations: readonly ApiOperation[]): Hono {
  let built: Reference | undefined;
  const reference = (): Reference => {
    if (built === undefined) {
      const doc = buildOpenApiDocument(operations);
      built = { json: JSON.stringify(doc), html: renderReferenceHtml(doc) };
    }
    return built;
  };
  return addOperations(new Hono(), referenceOperations, reference);
}
