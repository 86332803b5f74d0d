import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { WarmPool } from '../../services/warm-pool.ts'
import { WarmPoolStatus } from '../schemas/warm-pool.ts'

export const warmPoolRoutes = (pool: WarmPool): FastifyPluginAsyncTypebox => async (app) => {
  app.get(
    '/warm-pool',
    { schema: { tags: ['vms'], summary: 'Warm pool status: VMs booted ahead of demand for creates of the template shape (SNAPSHOT_TEMPLATE_CPU/MEM_MB)', response: { 200: WarmPoolStatus } } },
    () => pool.status(),
  )
}
