/** The OpenAPI document of the API, generated from the route registry, and the routes that serve it. */
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
export { API_OPERATIONS, type ApiOperation, type HttpMethod } from './registry.js';
export { openApiRoutes } from './routes.js';
