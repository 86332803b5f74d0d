// Raw request bodies (tar.gz uploads, image files) are streamed, never buffered: Fastify's
// bodyLimit does not apply to a stream, so the byte limit is enforced here while it flows.
import { Transform, type Readable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import { ApiError, Errors } from '../errors.ts'

export const RAW_TYPES = ['application/gzip', 'application/x-gzip', 'application/x-tar', 'application/octet-stream', 'application/zip', 'application/x-zip', 'application/x-zip-compressed']

export function acceptRawBodies(app: FastifyInstance): void {
  app.addContentTypeParser(RAW_TYPES, (_req, payload, done) => done(null, payload))
  // The original took any zip-like type as a raw stream too (application/vnd.…+zip and the like).
  app.addContentTypeParser(/^[\w.+-]+\/[\w.+-]*zip/i, (_req, payload, done) => done(null, payload))
}

/**
 * Streams `body` through `use` with the byte limit applied. Over the limit nothing more reaches
 * `use`, and the rest of the body is read and discarded before the 413 goes out (the original
 * drained it too): a client still sending would otherwise see its connection reset instead of
 * the answer, and reuse a connection the server is about to drop. Past DRAIN_MAX_BYTES the
 * connection is cut instead, so a client cannot make the manager read without end.
 */
export async function withBodyLimit(body: Readable, declaredLength: string | undefined, maxBytes: number, use: (limited: Readable) => Promise<void>): Promise<void> {
  const declared = Number(declaredLength)
  try {
    if (Number.isFinite(declared) && declared > maxBytes) throw Errors.payloadTooLarge(maxBytes)
    await use(limitBytes(body, maxBytes))
  } catch (err) {
    if (err instanceof ApiError && err.code === 'payload_too_large') await discardRest(body, DRAIN_MAX_BYTES)
    throw err
  }
}

const DRAIN_MAX_BYTES = 256 * 1024 * 1024

async function discardRest(body: Readable, maxBytes: number): Promise<void> {
  if (body.readableEnded || body.destroyed) return
  body.unpipe()
  let seen = 0
  await new Promise<void>((resolve) => {
    body.on('data', (c: Buffer) => {
      seen += c.length
      if (seen > maxBytes) {
        body.destroy()
        resolve()
      }
    })
    body.once('end', resolve)
    body.once('close', resolve)
    body.once('error', () => resolve())
    body.resume()
  })
}

function limitBytes(body: Readable, maxBytes: number): Readable {
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
