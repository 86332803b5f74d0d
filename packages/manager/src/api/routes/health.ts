// GET /health and GET /ready, without authentication and without rate limit: probes of load
// balancers and orchestrators. /health answers as long as the process serves HTTP and touches
// nothing; /ready asks the database, the default image and the VM network (services/readiness.ts).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Errors } from '../../errors.ts'
import type { ReadinessService } from '../../services/readiness.ts'
import { HealthBody, ReadyBody } from '../schemas/health.ts'

export const PROBE_ROUTES = ['/health', '/ready'] as const

export const healthRoutes = (readiness: ReadinessService): FastifyPluginAsyncTypebox => async (app) => {
  app.get(
    '/health',
    { schema: { tags: ['health'], summary: 'Liveness: the manager process is alive (no authentication, no work done)', security: [], response: { 200: HealthBody } } },
    () => ({ status: 'ok' as const, uptimeSeconds: Math.round(process.uptime()) }),
  )
  app.get(
    '/ready',
    { schema: { tags: ['health'], summary: 'Readiness: the database answers, the default image is there, the VM network is up (no authentication); 503 names the failed checks', security: [], response: { 200: ReadyBody, 503: ReadyBody } } },
    async (req, reply) => {
      const { ready, checks } = await readiness.check()
      if (ready) return { status: 'ready' as const, checks }
      const failed = Object.entries(checks).filter(([, c]) => !c.ok).map(([name, c]) => `${name} (${c.message})`)
      const err = Errors.notReady(failed)
      return reply.code(503).send({ status: 'not_ready' as const, checks, code: 'not_ready' as const, message: err.message, requestId: req.id })
    },
  )
}
