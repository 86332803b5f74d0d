import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { Errors } from '../../errors.ts'
import { LOG_TYPE_ALIASES, LOG_TYPES, type LogType, type VmExecService } from '../../services/vm-exec.ts'
import { errorResponses, IdParams } from '../schemas/common.ts'
import { shortVmNotFound } from '../not-found.ts'
import { ExecBody, ExecLogsQuery, ExecLogsResponse, ExecResponse, LogsQuery, RunJsBody, RunResponse, RunTsBody, streamable } from '../schemas/exec.ts'
import { NDJSON } from '@rds/protocol'

const tags = ['exec']
const clamp = (n: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, n))
const runErrors = errorResponses(400, 404, 409, 502)

export const vmExecRoutes = (svc: VmExecService): FastifyPluginAsyncTypebox => async (app) => {
  // With "stream": true the answer is NDJSON once the command runs; anything refused before that
  // (VM, state, body, the agent's checks) is still an ordinary JSON error.
  app.post('/vms/:id/exec', { bodyLimit: 1024 * 1024, schema: { tags, summary: 'Run a command (shell or argv) as uid 1000', params: IdParams, body: ExecBody, response: { 200: streamable(ExecResponse), ...runErrors } } }, async (req, reply) => {
    const { stream, ...input } = req.body
    if (stream) return reply.type(NDJSON).send(await svc.execStream(req.params.id, input))
    return reply.type('application/json').send(await svc.exec(req.params.id, input))
  })
  app.post('/vms/:id/run-ts', { bodyLimit: 1024 * 1024, schema: { tags, summary: 'Run TypeScript with Deno', params: IdParams, body: RunTsBody, response: { 200: streamable(RunResponse), ...runErrors } } }, async (req, reply) => {
    const { stream, denoFlags, ...input } = req.body
    if (stream) return reply.type(NDJSON).send(await svc.runTsStream(req.params.id, { ...input, flags: denoFlags }))
    return reply.type('application/json').send(await svc.runTs(req.params.id, { ...input, flags: denoFlags }))
  })
  app.post('/vms/:id/run-js', { bodyLimit: 1024 * 1024, schema: { tags, summary: 'Run JavaScript with Node', params: IdParams, body: RunJsBody, response: { 200: streamable(RunResponse), ...runErrors } } }, async (req, reply) => {
    const { stream, nodeFlags, ...input } = req.body
    if (stream) return reply.type(NDJSON).send(await svc.runJsStream(req.params.id, { ...input, flags: nodeFlags }))
    return reply.type('application/json').send(await svc.runJs(req.params.id, { ...input, flags: nodeFlags }))
  })
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
