import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { Errors } from '../../errors.ts'
import { LOG_TYPE_ALIASES, LOG_TYPES, type LogType, type VmExecService } from '../../services/vm-exec.ts'
import { errorResponses, IdParams } from '../schemas/common.ts'
import { shortVmNotFound } from '../not-found.ts'
import { ExecBody, ExecLogsQuery, ExecLogsResponse, ExecResponse, LogsQuery, RunJsBody, RunResponse, RunTsBody } from '../schemas/exec.ts'

const tags = ['exec']
const clamp = (n: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, n))
const runErrors = errorResponses(400, 404, 409, 502)

export const vmExecRoutes = (svc: VmExecService): FastifyPluginAsyncTypebox => async (app) => {
  app.post('/vms/:id/exec', { bodyLimit: 1024 * 1024, schema: { tags, summary: 'Run a shell command as uid 1000', params: IdParams, body: ExecBody, response: { 200: ExecResponse, ...runErrors } } }, async (req) =>
    svc.exec(req.params.id, req.body),
  )
  app.post('/vms/:id/run-ts', { bodyLimit: 1024 * 1024, schema: { tags, summary: 'Run TypeScript with Deno', params: IdParams, body: RunTsBody, response: { 200: RunResponse, ...runErrors } } }, async (req) =>
    svc.runTs(req.params.id, { ...req.body, flags: req.body.denoFlags }),
  )
  app.post('/vms/:id/run-js', { bodyLimit: 1024 * 1024, schema: { tags, summary: 'Run JavaScript with Node', params: IdParams, body: RunJsBody, response: { 200: RunResponse, ...runErrors } } }, async (req) =>
    svc.runJs(req.params.id, { ...req.body, flags: req.body.nodeFlags }),
  )
  app.get('/vms/:id/logs', { schema: { tags: ['vms'], summary: 'Tail a VM log', params: IdParams, querystring: LogsQuery, response: { 200: Type.Object({ type: Type.String(), lines: Type.Array(Type.String()), truncated: Type.Boolean(), updatedAt: Type.Optional(Type.String()) }), ...errorResponses(400, 404) } } }, async (req) => {
    const raw = req.query.type ?? 'console.log'
    const type = (LOG_TYPES as readonly string[]).includes(raw) ? (raw as LogType) : LOG_TYPE_ALIASES[raw]
    if (!type) throw Errors.badRequest('Invalid log type')
    // Answered under the name asked for, so a client of the original sees its own type back.
    return { ...(await svc.logs(req.params.id, type, clamp(req.query.tail ?? 200, 1, 1000))), type: raw }
  })
  app.get('/vms/:id/exec-logs', { schema: { tags, summary: 'History of exec / run-ts / run-js (newest first)', params: IdParams, querystring: ExecLogsQuery, response: { 200: ExecLogsResponse, ...errorResponses(404) } } }, async (req) =>
    shortVmNotFound(svc.execLogs(req.params.id, clamp(req.query.limit ?? 50, 1, 200), req.query.type ?? 'all')),
  )
}
