// The API answers every refusal with { code, message } (docs/errors.md); a proxy in front of it
// may answer with a page instead. Either way the node reports a code and a sentence.
import type { JsonObject } from 'n8n-workflow'

/** The API's error body, or as much of one as a foreign answer (a proxy's page) gives. */
export function errorBody(body: unknown): { code: string; message: string } & JsonObject {
  let parsed: unknown = body
  if (Buffer.isBuffer(body)) parsed = body.toString('utf8')
  else if (body instanceof ArrayBuffer) parsed = Buffer.from(body).toString('utf8')
  if (typeof parsed === 'string') {
    const text: string = parsed
    try {
      parsed = JSON.parse(text)
    } catch {
      return { code: 'unknown', message: text.slice(0, 500) || 'The manager answered without a body' }
    }
  }
  const obj = (parsed && typeof parsed === 'object' ? parsed : {}) as JsonObject
  return {
    ...obj,
    code: typeof obj.code === 'string' ? obj.code : 'unknown',
    message: typeof obj.message === 'string' ? obj.message : 'The manager refused the request',
  }
}
