// Routes that exist only when the manager runs for a test suite (RDS_TEST_GUEST_ROOT=true): the
// network tests must act as guest root to show that root inside a VM cannot pass the host's
// enforcement. Never registered otherwise, and hidden from the OpenAPI document.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { VmExecService } from '../../services/vm-exec.ts'
import { IdParams } from '../schemas/common.ts'
import { ExecBody } from '../schemas/exec.ts'

export const testHookRoutes = (svc: VmExecService): FastifyPluginAsyncTypebox => async (app) => {
  app.post('/vms/:id/test-hooks/root-exec', { schema: { hide: true, params: IdParams, body: ExecBody } }, async (req) => svc.exec(req.params.id, { ...req.body, asRoot: true }))
}
