// GET /metrics: Prometheus' text format (services/metrics/prometheus.ts). METRICS_AUTH=apikey
// (the default) asks for a key like /v1 does, and also takes it as `Authorization: Bearer <key>`,
// which is what Prometheus' scrape config sends (`authorization: {credentials: …}`);
// METRICS_AUTH=none leaves it open for a scraper on a trusted network.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { Errors } from '../../errors.ts'
import type { ManagerMetrics } from '../../services/metrics/prometheus.ts'
import { authenticate, keyMatches, type Authenticators } from '../auth.ts'
import { errorResponses } from '../schemas/common.ts'

const bearerOf = (header: string | undefined): string | undefined => /^Bearer +(\S+)$/i.exec(header ?? '')?.[1]

export const metricsRoutes = (metrics: ManagerMetrics, o: { auth: 'none' | 'apikey'; authenticators: Authenticators }): FastifyPluginAsyncTypebox => async (app) => {
  const a = o.authenticators
  app.get(
    '/metrics',
    {
      schema: {
        tags: ['health'],
        summary: 'Metrics in Prometheus text format (METRICS_AUTH=apikey: X-API-Key, Authorization: Bearer <key> or the admin session)',
        ...(o.auth === 'none' ? { security: [] } : {}),
        response: { 200: { description: 'Prometheus text exposition format 0.0.4', content: { 'text/plain': { schema: Type.String() } } }, ...errorResponses(401) },
      },
      onRequest: async (req) => {
        if (o.auth === 'none') return
        const bearer = req.headers['x-api-key'] === undefined ? bearerOf(req.headers.authorization) : undefined
        if (bearer === undefined) return void (await authenticate(req, a))
        if (!keyMatches(bearer, a.envKey) && !(await a.apiKeys.verify(bearer))) throw Errors.unauthorized()
      },
    },
    async (_req, reply) => reply.type(metrics.contentType).send(await metrics.render()),
  )
}
