// Counts every answered request for rds_http_requests_total by its route pattern
// (`/v1/vms/:id`), never by its URL: ids in the URL would make one series per VM, and a client
// could create series at will. Requests no route matched count as one route, `unmatched`.
import type { FastifyInstance } from 'fastify'
import type { ManagerMetrics } from '../services/metrics/prometheus.ts'

export const UNMATCHED_ROUTE = 'unmatched'

export function installHttpMetrics(app: FastifyInstance, metrics: Pick<ManagerMetrics, 'httpRequest'>): void {
  app.addHook('onResponse', async (req, reply) => {
    const route = req.is404 ? undefined : req.routeOptions.url
    metrics.httpRequest(route ?? UNMATCHED_ROUTE, req.method, reply.statusCode)
  })
}
