// Background processes: start, list, get, output (NDJSON), stdin (raw body), signal, kill, and
// the WebSocket attach (attach.ts). Every verb is one request to the VM's agent, which owns them.
import { Readable } from 'node:stream'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { NDJSON, type OutputEvent } from '@rds/protocol'
import { Type } from 'typebox'
import type { VmProcessService } from '../../services/vm-processes.ts'
import { errorResponses, IdParams } from '../schemas/common.ts'
import { OutputQuery, ProcessListResponse, ProcessParams, ProcessResponse, ProcessStartBody, SignalBody, StdinQuery, TicketResponse } from '../schemas/processes.ts'

const tags = ['processes']
const agentErrors = errorResponses(400, 404, 409, 502)

export const vmProcessRoutes = (svc: VmProcessService): FastifyPluginAsyncTypebox => async (app) => {
  // stdin takes any bytes, whatever type the client names (curl --data-binary sends a form type).
  app.addContentTypeParser('*', (_req, payload, done) => done(null, payload))

  app.post('/vms/:id/processes', { schema: { tags, summary: 'Start a background process (as uid 1000)', params: IdParams, body: ProcessStartBody, response: { 201: ProcessResponse, ...agentErrors, 429: errorResponses(429)[429] } } }, async (req, reply) =>
    reply.code(201).send(await svc.start(req.params.id, req.body)),
  )
  app.get('/vms/:id/processes', { schema: { tags, summary: 'List the VM\'s processes (running, and the last exited ones)', params: IdParams, response: { 200: ProcessListResponse, ...agentErrors } } }, async (req) => svc.list(req.params.id))
  app.get('/vms/:id/processes/:pid', { schema: { tags, summary: 'A process\'s state', params: ProcessParams, response: { 200: ProcessResponse, ...agentErrors } } }, async (req) => svc.get(req.params.id, req.params.pid))
  app.get(
    '/vms/:id/processes/:pid/output',
    {
      schema: {
        tags,
        summary: 'Output events (NDJSON) from the replay buffer, with byte offsets; follow=true until the exit',
        description: 'One OutputEvent per line: {type:"stdout"|"stderr", data|dataBase64, offset, skipped?}, then {type:"exit", exitCode, timedOut, durationMs} once the process ended, or {type:"error", code, message} if the stream broke. `skipped` counts bytes before `offset` that the buffer (1 MiB per stream) no longer held.',
        params: ProcessParams,
        querystring: OutputQuery,
        response: { 200: { content: { [NDJSON]: { schema: Type.Unsafe<Readable>({ type: 'string' }) } } }, ...agentErrors },
      },
    },
    async (req, reply) => {
      const { events, cancel } = await svc.output(req.params.id, req.params.pid, req.query)
      // Pulled as the client reads: a slow client slows the agent stream (and the process).
      const body = Readable.from(ndjson(events), { objectMode: false })
      reply.raw.once('close', cancel)
      reply.type(NDJSON).send(body)
      // The status goes out now, not with the first output: a silent process is followed too.
      reply.raw.flushHeaders()
      return reply
    },
  )
  app.post(
    '/vms/:id/processes/:pid/stdin',
    {
      schema: {
        tags,
        summary: 'Write the raw body to the process\'s stdin (streamed); eof=true closes it after',
        params: ProcessParams,
        querystring: StdinQuery,
        consumes: ['application/octet-stream'],
        response: { 204: Type.Null(), ...agentErrors },
      },
    },
    async (req, reply) => {
      const body = (req.body as Readable | undefined) ?? Readable.from([])
      await svc.stdin(req.params.id, req.params.pid, body, req.query.eof === true)
      return reply.code(204).send(null)
    },
  )
  app.post('/vms/:id/processes/:pid/signal', { schema: { tags, summary: 'Send a signal to the process group (on a terminal: to its foreground job)', params: ProcessParams, body: SignalBody, response: { 204: Type.Null(), ...agentErrors } } }, async (req, reply) => {
    await svc.signal(req.params.id, req.params.pid, req.body.signal)
    return reply.code(204).send(null)
  })
  app.delete('/vms/:id/processes/:pid', { schema: { tags, summary: 'Kill the process group and everything it started (its cgroup); it stays listed as exited', params: ProcessParams, response: { 204: Type.Null(), ...agentErrors } } }, async (req, reply) => {
    await svc.kill(req.params.id, req.params.pid)
    return reply.code(204).send(null)
  })
  app.post('/vms/:id/processes/:pid/attach-ticket', { schema: { tags, summary: 'A single-use ticket (30 s) for one WebSocket attach of this process, for clients that cannot send X-API-Key', params: ProcessParams, response: { 200: TicketResponse, ...agentErrors } } }, async (req) =>
    svc.attachTicket(req.params.id, req.params.pid, req.actor),
  )
}

async function* ndjson(events: AsyncGenerator<OutputEvent>): AsyncGenerator<string> {
  try {
    for await (const e of events) yield `${JSON.stringify(e)}\n`
  } finally {
    await events.return(undefined)
  }
}
