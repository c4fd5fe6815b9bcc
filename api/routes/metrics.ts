/** `GET /metrics` (outside `/v1`, no authentication): the node's Prometheus metrics, for scrapers. */
import { Hono } from 'hono';
import type { NodeMetrics } from '../metrics.js';
import { addOperations, operationsWith } from '../operation.js';

const define = operationsWith<NodeMetrics>();

/** The scrape. */
export const metricsOperations = [
  define({
    method: 'get',
    path: '/metrics',
    operationId: 'metrics',
    tag: 'Operations',
    summary: 'Prometheus metrics of the node (text exposition format).',
    produces: 'text/plain',
    handler: async (c, _input, metrics) => {
      const { contentType, body } = await metrics.scrape();
      return c.body(body, 200, { 'content-type': contentType });
    },
  }),
];

/** The metrics route; mount at the root of the app. */
export function metricsRoutes(metrics: NodeMetrics): Hono {
  return addOperations(new Hono(), metricsOperations, metrics, '/');
}
