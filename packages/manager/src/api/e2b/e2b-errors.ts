// E2B's error body is {code: <HTTP status as a number>, message}; its SDKs pick the exception by
// the status (404 → not found, 409 → conflict …). Our stable machine-readable code rides along in
// `error_code`, the field E2B's spec keeps for exactly that.
import type { FastifyError, FastifyInstance } from 'fastify'
import { ApiError, knownApiError } from '../../errors.ts'

export function e2bErrorBody(status: number, message: string, code: string) {
  return { code: status, message, error_code: code }
}

export function installE2bErrorHandler(app: FastifyInstance): void {
  app.setErrorHandler((thrown: FastifyError | ApiError, req, reply) => {
    const err = knownApiError(thrown) ?? thrown
    if (err instanceof ApiError) {
      if (err.status >= 500) req.log.error({ err }, err.message)
      return reply.code(err.status).send(e2bErrorBody(err.status, err.message, err.code))
    }
    if (err.validation) return reply.code(400).send(e2bErrorBody(400, `Invalid request: ${err.message}`, 'validation_failed'))
    const status = err.statusCode ?? 500
    if (status >= 400 && status < 500) return reply.code(status).send(e2bErrorBody(status, err.message, 'bad_request'))
    req.log.error({ err }, 'unhandled error')
    return reply.code(500).send(e2bErrorBody(500, 'Internal Server Error', 'internal'))
  })
}
