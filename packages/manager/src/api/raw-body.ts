// Raw request bodies (tar.gz uploads, image files) are streamed, never buffered: Fastify's
// bodyLimit does not apply to a stream, so the byte limit is enforced here while it flows.
import { Transform, type Readable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import { Errors } from '../errors.ts'

export const RAW_TYPES = ['application/gzip', 'application/x-gzip', 'application/x-tar', 'application/octet-stream', 'application/zip', 'application/x-zip', 'application/x-zip-compressed']

export function acceptRawBodies(app: FastifyInstance): void {
  app.addContentTypeParser(RAW_TYPES, (_req, payload, done) => done(null, payload))
  // The original took any zip-like type as a raw stream too (application/vnd.…+zip and the like).
  app.addContentTypeParser(/^[\w.+-]+\/[\w.+-]*zip/i, (_req, payload, done) => done(null, payload))
}

/** Refuses a body whose declared length is already over the limit, before reading any of it. */
export function checkDeclaredLength(headers: Record<string, string | string[] | undefined>, maxBytes: number): void {
  const declared = Number(headers['content-length'])
  if (Number.isFinite(declared) && declared > maxBytes) throw Errors.payloadTooLarge(maxBytes)
}

export function limitBytes(body: Readable, maxBytes: number): Readable {
  let seen = 0
  const counter = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      seen += chunk.length
      if (seen > maxBytes) cb(Errors.payloadTooLarge(maxBytes))
      else cb(null, chunk)
    },
  })
  body.on('error', (e) => counter.destroy(e))
  return body.pipe(counter)
}
