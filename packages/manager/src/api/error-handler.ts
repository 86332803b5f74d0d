// The one place where an error becomes an HTTP response: ApiErrors carry their status and
// code; Fastify's own 4xx (schema, body size, content type) get a stable code here; anything
// else is a 500 whose details stay in the log. Every body carries the request's id
// (`requestId`, also in the X-Request-Id header and in the log lines of that request).
import type { FastifyError, FastifyInstance } from 'fastify'
import { ApiError, knownApiError } from '../errors.ts'

const FASTIFY_CODES: Record<string, string> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'bad_request',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'invalid_json',
  FST_ERR_CTP_INVALID_JSON_BODY: 'invalid_json',
  FST_ERR_VALIDATION: 'validation_failed',
}

export function installErrorHandler(app: FastifyInstance, o: { exposeInternalErrors?: boolean } = {}): void {
  app.setErrorHandler((thrown: FastifyError | ApiError, req, reply) => {
    // A runtime error a service let through keeps its kind (a VMM that is gone is a 409, not a 500).
    const err = knownApiError(thrown) ?? thrown
    if (err instanceof ApiError) {
      if (err.status >= 500) req.log.error({ err }, err.message)
      if (typeof err.details?.retryAfterSeconds === 'number') reply.header('retry-after', String(err.details.retryAfterSeconds))
      return reply.code(err.status).send({ ...err.details, code: err.code, message: err.message, requestId: req.id })
    }
    const status = err.statusCode ?? 500
    if (err.validation) return reply.code(400).send({ code: 'validation_failed', message: `Invalid request: ${err.message}`, requestId: req.id })
    if (status >= 400 && status < 500) {
      const code = (err.code && FASTIFY_CODES[err.code]) ?? (err.message.includes('JSON') ? 'invalid_json' : 'bad_request')
      return reply.code(status).send({ code, message: err.message, requestId: req.id })
    }
    req.log.error({ err }, 'unhandled error')
    // EXPOSE_INTERNAL_ERRORS (the original's switch) is for debugging: messages may name host paths.
    return reply.code(500).send({ code: 'internal', message: o.exposeInternalErrors ? err.message : 'Internal Server Error', requestId: req.id })
  })

  app.setNotFoundHandler((req, reply) => reply.code(404).send({ code: 'not_found', message: 'Not Found', requestId: req.id }))
}
