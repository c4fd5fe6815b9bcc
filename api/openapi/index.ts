/**
 * The OpenAPI document of the API and its HTML page, assembled from the operations' definitions (api/operation.ts);
 * served by api/routes/reference.ts.
 */
export {
  buildOpenApiDocument,
  errorBodySchema,
  type JsonSchema,
  type OpenApiDocument,
  type OpenApiOperation,
  type OpenApiParameter,
  toJsonSchema,
} from './document.js';
export { escapeHtml, renderReferenceHtml } from './html.js';
