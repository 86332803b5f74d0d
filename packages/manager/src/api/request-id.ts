// Every request has an id: the caller's X-Request-Id when it is a sane one (a proxy or a client
// tracing its calls), else a new UUID. It is echoed in the X-Request-Id response header, carried
// by every error body (`requestId`) and by every log line written while the request is served,
// the services' own lines included: the id rides the request's async context, and the logger's
// mixin adds it where the line does not have it already (req.log's lines do, as `reqId`).
import { AsyncLocalStorage } from 'node:async_hooks'
import crypto from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import type { FastifyInstance } from 'fastify'

export const REQUEST_ID_HEADER = 'x-request-id'

/** Bounded and plain: it goes into logs and headers as it is, so no spaces, quotes or control characters. */
const SANE_ID = /^[A-Za-z0-9._:@+=/-]{1,128}$/

const context = new AsyncLocalStorage<string>()

/** Fastify's genReqId: the incoming id when sane (a repeated header is not), else a new one. */
export function requestIdOf(req: IncomingMessage): string {
  const given = req.headers[REQUEST_ID_HEADER]
  return typeof given === 'string' && SANE_ID.test(given) ? given : crypto.randomUUID()
}

export function installRequestIds(app: FastifyInstance): void {
  // A callback hook: everything Fastify runs after `done` (hooks, handler, the services) inherits the context.
  app.addHook('onRequest', (req, reply, done) => {
    reply.header(REQUEST_ID_HEADER, req.id)
    context.run(req.id, done)
  })
}

/** pino's mixin: the id of the request being served, on lines that do not carry one (`reqId`, Fastify's name). */
export function requestIdMixin(_merge: object, _level: number, logger: { bindings(): Record<string, unknown> }): object {
  const reqId = context.getStore()
  if (reqId === undefined || 'reqId' in logger.bindings()) return {}
  return { reqId }
}
