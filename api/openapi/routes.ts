/** Serves the OpenAPI document at `/v1/openapi.json` and the reference page at `/v1/docs` (mount under `/v1`). */
import { Hono } from 'hono';
import { buildOpenApiDocument, type OpenApiDocument } from './document.js';
import { renderReferenceHtml } from './html.js';

let cached: { doc: OpenApiDocument; json: string; html: string } | undefined;

/** The document, its JSON text and its page, built on first use (the registry does not change at run time). */
function built(): { doc: OpenApiDocument; json: string; html: string } {
  if (cached === undefined) {
    const doc = buildOpenApiDocument();
    cached = { doc, json: JSON.stringify(doc), html: renderReferenceHtml(doc) };
  }
  return cached;
}

/** Routes of the API document, to mount under `/v1`. */
export function openApiRoutes(): Hono {
  const routes = new Hono();
  routes.get('/openapi.json', (c) => c.body(built().json, 200, { 'content-type': 'application/json; charset=utf-8' }));
  routes.get('/docs', (c) =>
    c.html(built().html, 200, {
      // The page loads nothing: no script, no remote style, no images.
      'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'",
    }),
  );
  return routes;
}
