// Validation and JSON parsing rules of the API. Bodies are validated strictly (a number is
// never silently turned into a string); query strings and path params are coerced, since on
// the wire they are always strings. Unknown body fields are dropped, not refused: the original's
// validator did that, and its clients send fields we do not know (a misspelt required field
// still fails, as it is then missing).
import { Ajv } from 'ajv'
import addFormats from 'ajv-formats'
import type { FastifyInstance } from 'fastify'
import { ApiError } from '../errors.ts'

function ajv(coerce: boolean) {
  const a = new Ajv({ coerceTypes: coerce ? 'array' : false, useDefaults: true, removeAdditional: true, allErrors: false, strict: false })
  addFormats.default(a)
  return a
}

export function installValidation(app: FastifyInstance): void {
  const strict = ajv(false)
  const coercing = ajv(true)
  app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'body' ? strict : coercing).compile(schema))

  // An empty body is "no body" (curl -X POST -H 'content-type: application/json' is common).
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    const text = String(body)
    if (text.trim() === '') return done(null, undefined)
    try {
      done(null, JSON.parse(text))
    } catch (err) {
      done(new ApiError(400, 'invalid_json', `Body is not valid JSON: ${(err as Error).message}`), undefined)
    }
  })
}
