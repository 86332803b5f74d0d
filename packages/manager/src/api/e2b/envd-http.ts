// envd's plain HTTP routes for one sandbox: /health, /envs and /files (download; upload as
// multipart form or as raw bytes, optionally gzip-encoded). Files go to our file API under the
// same paths mapping and confinement as the RPC services (home-paths.ts).
import { Readable } from 'node:stream'
import zlib from 'node:zlib'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { Type, type Static } from 'typebox'
import { ApiError, Errors } from '../../errors.ts'
import type { VmFilesService } from '../../services/vm-files.ts'
import type { E2bSandboxes } from '../../services/e2b/sandboxes.ts'
import { e2bErrorBody } from './e2b-errors.ts'
import { e2bPathOf, guestPathOf } from './home-paths.ts'

const FileQuery = Type.Object({ path: Type.Optional(Type.String({ maxLength: 4096 })), username: Type.Optional(Type.String()) })
type FileQuery = Static<typeof FileQuery>

/** envd's statuses differ from ours in one place: a directory where a file was asked for is a 400. */
const ENVD_STATUS: Record<string, number> = { is_a_directory: 400, not_a_directory: 400 }

async function bodyBytes(req: FastifyRequest, limit: number): Promise<Buffer> {
  const parts: Buffer[] = []
  let n = 0
  for await (const c of req.raw) {
    n += (c as Buffer).length
    if (n > limit) throw Errors.payloadTooLarge(limit)
    parts.push(c as Buffer)
  }
  return Buffer.concat(parts)
}

export function envdHttpRoutes(deps: { files: VmFilesService; sandboxes: E2bSandboxes; sandboxIdOf: (req: FastifyRequest) => string; multipartMaxBytes: number }) {
  const { files } = deps

  async function writeOne(id: string, e2bPath: string, body: Readable) {
    const guest = guestPathOf(e2bPath)
    await files.write(id, guest, undefined, body)
    const name = guest.split('/').pop() ?? ''
    return { name, type: 'file', path: e2bPathOf(guest) }
  }

  return async (app: FastifyInstance) => {
    app.setErrorHandler((err: Error, req, reply: FastifyReply) => {
      if (err instanceof ApiError) {
        const status = ENVD_STATUS[err.code] ?? err.status
        return reply.code(status).send(e2bErrorBody(status, err.message, err.code))
      }
      req.log.error({ err }, 'envd route failed')
      return reply.code(500).send(e2bErrorBody(500, 'Internal Server Error', 'internal'))
    })

    app.get('/health', { schema: { hide: true } }, async (_req, reply) => reply.code(204).send())

    // The sandbox-wide env vars the client set at create (the VM's secretEnv is not shown).
    app.get('/envs', { schema: { hide: true } }, async (req) => deps.sandboxes.envVarsOf(deps.sandboxIdOf(req)))

    app.get('/files', { schema: { hide: true, querystring: FileQuery } }, async (req, reply) => {
      const id = deps.sandboxIdOf(req)
      const { path } = req.query as FileQuery
      if (!path) throw Errors.badRequest('the path query parameter is required')
      const read = await files.read(id, guestPathOf(path), undefined)
      const name = path.split('/').pop() ?? 'file'
      return reply
        .header('content-type', 'application/octet-stream')
        .header('content-length', String(read.length))
        .header('content-disposition', `attachment; filename*=UTF-8''${encodeURIComponent(name)}`)
        .send(read.body)
    })

    app.post('/files', { schema: { hide: true, querystring: FileQuery } }, async (req) => {
      const id = deps.sandboxIdOf(req)
      const { path } = req.query as FileQuery
      const type = String(req.headers['content-type'] ?? '')
      if (type.startsWith('multipart/form-data')) {
        // Forms are the SDKs' default for small writes; the whole form is read (bounded) and parsed by undici's FormData.
        const form = await new Response(new Uint8Array(await bodyBytes(req, deps.multipartMaxBytes)), { headers: { 'content-type': type } }).formData()
        const written = []
        for (const value of form.values()) {
          if (typeof value === 'string') continue
          const target = path ?? value.name
          if (!target) throw Errors.badRequest('a file needs a path: the path query parameter or the part\'s filename')
          written.push(await writeOne(id, target, Readable.from(Buffer.from(await value.arrayBuffer()))))
        }
        if (written.length === 0) throw Errors.badRequest('the form holds no file')
        return written
      }
      if (!path) throw Errors.badRequest('the path query parameter is required for a raw upload')
      const gzip = String(req.headers['content-encoding'] ?? '').toLowerCase() === 'gzip'
      // Streamed as it arrives: a raw upload is never held whole.
      return [await writeOne(id, path, gzip ? req.raw.pipe(zlib.createGunzip()) : req.raw)]
    })
  }
}
